"""Where each of the service's actors runs: node, address and the custom resources that put it there.

`visionloop up` prints it on a cluster, and the two-node demo checks it. Ray's public state API needs the dashboard,
which a small cluster may run without, so this reads the actor and node tables from the GCS (``ray.nodes()`` and
Ray's actor table), which every cluster has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visionloop.core.ray_runtime import import_ray

# Ray's own resources; whatever else a node offers was given to it on purpose (ray start --resources).
BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory", "accelerator_type")


@dataclass(frozen=True)
class ActorPlace:
    actor: str  # class name, plus the actor's name where it has one
    node_id: str
    node_ip: str
    node_resources: tuple[str, ...]  # the node's custom resources, e.g. ("infer",)
    pid: int

    def line(self) -> str:
        labels = ",".join(self.node_resources) or "-"
        return f"{self.actor:<44} node {self.node_id[:8]} {self.node_ip:<15} [{labels}] pid {self.pid}"


def custom_resources(resources: dict[str, Any]) -> tuple[str, ...]:
    """A node's resources that are not Ray's own (nor its per-node ``node:<ip>`` markers)."""
    names = (name for name in resources if not name.startswith(BUILTIN_RESOURCES) and not name.startswith("node:"))
    return tuple(sorted(names))


def actor_places(name_filter: str = "") -> list[ActorPlace]:
    """Every live actor (whose class or name contains ``name_filter``) with the node it runs on."""
    ray = import_ray()
    from ray._private import state  # the GCS actor table: the only listing that needs no dashboard

    nodes = {n["NodeID"]: n for n in ray.nodes()}
    places = []
    for info in state.actors().values():
        if info["State"] != "ALIVE":
            continue
        label = info["ActorClassName"] + (f" {info['Name']}" if info["Name"] else "")
        if name_filter and name_filter not in label:
            continue
        node = nodes.get(info["Address"]["NodeID"], {})
        places.append(
            ActorPlace(
                label,
                info["Address"]["NodeID"],
                info["Address"]["IPAddress"],
                custom_resources(node.get("Resources", {})),
                int(info["Pid"]),
            )
        )
    return sorted(places, key=lambda p: (p.node_resources, p.actor))
