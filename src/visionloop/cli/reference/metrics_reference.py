"""The metrics reference: every metric visionloop defines, read from its definition in the source (a
``metrics.Counter/Gauge/Histogram("visionloop_...", "description", tag_keys=...)`` call of Ray's metrics API), with
the name Prometheus sees on ``/metrics`` (Ray prefixes ``ray_``; counters end in ``_total``)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import visionloop
from visionloop.cli.reference.markdown import GENERATED, cell, code, table

KINDS = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram"}
PACKAGE = Path(visionloop.__file__).resolve().parent


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    kind: str
    description: str
    labels: tuple[str, ...]
    module: str

    @property
    def exposed(self) -> str:
        suffix = {"counter": "_total", "histogram": "_bucket, _sum, _count"}.get(self.kind, "")
        return f"ray_{self.name}{suffix}" if self.kind != "histogram" else f"ray_{self.name} ({suffix})"


def _text(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _definition(call: ast.Call, module: str) -> MetricDefinition | None:
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr in KINDS and call.args):
        return None
    name = _text(call.args[0])
    if name is None or not name.startswith("visionloop_"):
        return None
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    description = _text(call.args[1]) if len(call.args) > 1 else _text(keywords.get("description"))
    tags = keywords.get("tag_keys")
    labels = tuple(t for t in (_text(e) for e in tags.elts) if t) if isinstance(tags, ast.Tuple | ast.List) else ()
    return MetricDefinition(name, KINDS[func.attr], description or "", labels, module)


def metric_definitions(package: Path = PACKAGE) -> Iterator[MetricDefinition]:
    """Every metric defined under ``package``, in module order (the dashboards read metrics, never define them)."""
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and (found := _definition(node, module)) is not None:
                yield found


def metrics_page() -> str:
    rows = (
        (code(m.exposed), m.kind, code(", ".join(m.labels)), cell(m.description), code(m.module))
        for m in metric_definitions()
    )
    return "\n".join([
        GENERATED,
        "# Metrics reference\n",
        "Every metric visionloop defines, read from its definition. Each process that records them (Serve "
        "replicas, camera actors, workers) exports them through Ray's metrics agent; the Router's `/metrics` serves "
        "them all in the Prometheus text format, so one scrape job covers the service "
        "(see [Operations](../guides/operations.md)). Latencies are in milliseconds.\n",
        table(("Prometheus name", "type", "labels", "description", "defined in"), rows) + "\n",
    ])  # fmt: skip
