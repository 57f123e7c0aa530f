"""A simulated site: N cameras, each a fixed viewpoint of a domain with its own traffic, under a day cycle and
passing weather, with shifts scheduled on them; every frame stamped with its number (the frame clock) and known to
the pixel (truth per frame). Written ahead to H.264 and served live over RTSP, so measurements never pay for
rendering."""

from visionloop.simulation.site.render import SiteCamera, SiteFrame, TruthObject
from visionloop.simulation.site.spec import Shift, SiteSpec

__all__ = ["Shift", "SiteCamera", "SiteFrame", "SiteSpec", "TruthObject"]
