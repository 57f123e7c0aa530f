"""visionloop's spine: the data contracts, the settings schema, every Redis key and actor name, the model registry,
events, errors and small runtime helpers. Every part may import it; it imports no part. The face (the command,
the service composition, the demo) lives in ``visionloop.cli``."""
