"""The synthetic world: procedural scenes with known truth, so the loop can be measured without downloads."""

from visionloop.simulation.world.domain import Domain, load_domains
from visionloop.simulation.world.scene import CLASS_NAMES, Scene, SceneObject, render_scene
from visionloop.simulation.world.video import write_video
from visionloop.simulation.world.yolo_export import write_clip_dataset, write_yolo_dataset

__all__ = [
    "CLASS_NAMES",
    "Domain",
    "Scene",
    "SceneObject",
    "load_domains",
    "render_scene",
    "write_clip_dataset",
    "write_video",
    "write_yolo_dataset",
]
