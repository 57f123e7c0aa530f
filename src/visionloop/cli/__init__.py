"""The face: the ``visionloop`` command, the service composition behind ``visionloop up``, the demo, the load
generator and the API client. It wires the parts together and may import all of them; no part imports it."""

from visionloop.cli.app import main

__all__ = ["main"]
