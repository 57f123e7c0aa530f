"""visionloop: real-time object detection on camera streams with a local active-learning loop.

One package, one subpackage per part: ``core`` (contracts, settings, registry, streams; imports no part), ``cli``
(the face: the command and the service composition; nothing imports it), ``streaming``, ``serving``, ``labeling``,
``learning``, ``monitoring``, ``explaining``, ``dashboards`` (nothing imports it) and ``simulation`` (no real part
imports it). The import-linter contracts in pyproject.toml keep the arrows pointing that way.
"""
