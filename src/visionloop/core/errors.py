"""Typed errors with messages a user can act on."""


class VisionloopError(Exception):
    """Base of every error visionloop raises on purpose."""


class ConfigError(VisionloopError):
    """The settings are invalid; the message names the key and where it came from."""


class ModelLoadError(VisionloopError):
    """A model file is missing, unreadable or not a detector."""


class InvalidImageError(VisionloopError):
    """An uploaded or received frame could not be decoded as an image."""


class ImageTooLarge(InvalidImageError):
    """A frame whose header claims more pixels than any camera makes (a decompression bomb): refused unread."""


class UpstreamUnavailable(VisionloopError):
    """A service visionloop depends on (Label Studio, Redis, a worker) cannot be reached, timed out or failed:
    HTTP 503, with its reason; the request can be repeated later."""


class UpstreamRefused(VisionloopError):
    """A service visionloop depends on answered, but refused the request: HTTP 502, with its answer."""


class RedisUnavailableError(UpstreamUnavailable):
    """Redis could not be reached or started."""


class RegistryError(VisionloopError):
    """A model version or pointer in the registry is missing or inconsistent."""


class NotReadyError(VisionloopError):
    """A component is still starting; the request can be repeated shortly (HTTP 503, not a server fault)."""


class ComponentDisabled(VisionloopError):
    """The request needs a component the settings switch off (HTTP 409: the configuration, not a fault)."""
