"""The core every part stands on: the data contracts, the settings schema, every Redis key and actor name, the model
registry and its lifecycle, events, errors and small runtime helpers. Every part may import it; it imports no part."""
