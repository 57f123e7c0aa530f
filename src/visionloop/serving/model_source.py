"""Which file a Detector loads, and noticing when a registry pointer moves so a replica can swap models in place.

Replicas follow the registry's ``champion`` and ``shadow`` pointers themselves rather than being redeployed: in
Ray 2.60 an imperative ``serve.run`` gives every deployment a fresh random code version (``serve/_private/
client.py``), so redeploying to change a model would restart every replica (and the Router with them). Following
the pointer costs one ``stat`` of ``pointers.json`` per poll and swaps through the same path as Serve's
``reconfigure`` hook: the new model is loaded beside the old one, then replaces it between batches.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from visionloop.core.errors import ModelLoadError
from visionloop.core.registry import (
    INT8_ONNX_FILE,
    ONNX_FILE,
    POINTERS_FILE,
    TORCH_FILE,
    ModelRegistry,
    ResolvedModel,
    is_model_file,
    resolve_model,
)

log = logging.getLogger(__name__)


def resolve_for_backend(registry: ModelRegistry, model: str, backend: str, precision: str = "fp32") -> ResolvedModel:
    """The registry's one naming rule, plus the backend's need: ONNX Runtime loads ``model.onnx`` (or, at int8,
    ``model.int8.onnx``), the torch backend prefers ``model.pt``.

    A version registered before int8 files existed has none: it is served at fp32, and the log says so once per
    load (``visionloop models quantize`` registers an int8 copy)."""
    onnx_backend = backend == "onnxruntime"
    resolved = resolve_model(registry, model, prefer=ONNX_FILE if onnx_backend else TORCH_FILE)
    if onnx_backend and resolved.path.suffix != ".onnx":
        raise ModelLoadError(f"model {resolved.label} has no {ONNX_FILE} (serving.backend is onnxruntime)")
    if not onnx_backend or precision != "int8" or is_model_file(model):
        return resolved
    int8 = resolved.path.parent / INT8_ONNX_FILE
    if not int8.is_file():
        log.warning(
            "serving.precision is int8 but %s has no %s: serving it at fp32 ('visionloop models quantize %s' "
            "registers an int8 copy)", resolved.label, INT8_ONNX_FILE, resolved.label
        )  # fmt: skip
        return resolved
    return replace(resolved, path=int8, precision="int8")


class PointerWatch:
    """Tells when a registry pointer (``champion`` or ``shadow``) points somewhere new.

    ``poll()`` stats ``pointers.json`` and reads it only when its stamp changed, so polling every half second costs
    next to nothing. Readers never see a torn file: the registry replaces it atomically.
    """

    def __init__(self, registry_root: Path, pointer: str) -> None:
        if pointer not in ("champion", "shadow"):
            raise ValueError(f"pointer must be 'champion' or 'shadow', not {pointer!r}")
        self._registry = ModelRegistry(registry_root)
        self._file = registry_root / POINTERS_FILE
        self._pointer = pointer
        self._stamp: tuple[int, int, int] | None = None
        self.version: str | None = None

    def poll(self) -> bool:
        """Re-read the pointer if the file changed; True when the version it names changed."""
        try:
            st = os.stat(self._file)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        version = self._registry.pointers()[self._pointer] if stamp is not None else None
        changed, self.version = version != self.version, version
        return changed
