"""The model registry: ``<root>/<version>/`` holds ``model.onnx``, ``model.pt`` and ``meta.json``.

A published version is immutable: its files are read-only and nothing writes into its folder again (exports work
in a temporary folder), so the file a replica serves is the file that was evaluated. What changes over a model's
life lives beside the versions: which version is champion (and which runs in shadow) in ``<root>/pointers.json``,
and each version's role in ``<root>/roles.json``, both replaced atomically (write a temporary file, fsync, rename)
so a reader never sees half a pointer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.contracts import ModelRole
from visionloop.errors import ModelLoadError, RegistryError

ONNX_FILE = "model.onnx"
TORCH_FILE = "model.pt"
META_FILE = "meta.json"
POINTERS_FILE = "pointers.json"
ROLES_FILE = "roles.json"
_VERSION_RE = re.compile(r"^v(\d+)$")
MODEL_SUFFIXES = (".onnx", ".pt", ".torchscript", ".engine")


Role = ModelRole  # the registry's name for the one role enum of the contracts


@dataclass(frozen=True)
class ModelVersion:
    """One registered model and its lineage."""

    version: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def torch_path(self) -> Path:
        return self.path / TORCH_FILE

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_read_only(folder: Path) -> None:
    """Drop every write bit of the files under ``folder`` (a published version never changes).

    Files hard-linked from an older version are read-only already and are left as they are.
    """
    for path in folder.rglob("*"):
        if path.is_file():
            mode = path.stat().st_mode
            if mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
                path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` as a new file at ``path`` (a new inode): works over a read-only file, never edits one in place."""
    path.unlink(missing_ok=True)
    path.write_text(text, encoding="utf-8")


def publish_next_version(
    staging: Path, parent: Path, next_number: Callable[[], int], finalize: Callable[[str, Path], None]
) -> str:
    """Rename a fully written ``staging`` directory to ``parent/v<N>``; returns the version.

    ``finalize(version, final_path)`` writes what depends on the version number into ``staging`` first. Renaming a
    directory onto a name that does not exist is atomic, so readers never see half a version; a writer that loses
    a race for a number takes the next one. Every file is made read-only before it is published: a version never
    changes once readers can see it. The staging directory is removed if anything fails.
    """
    try:
        while True:
            version = f"v{next_number()}"
            final = parent / version
            finalize(version, final)  # after a lost race it runs again: it must replace files, not edit them
            make_read_only(staging)
            try:
                os.rename(staging, final)
                return version
            except OSError:
                if not final.exists():
                    raise  # not a lost race: a real error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class ModelRegistry:
    """Versions on disk plus the champion/shadow pointers."""

    def __init__(self, root: Path, on_swap: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        """``on_swap(kind, payload)`` announces pointer changes (the events stream)."""
        self.root = root
        self._on_swap = on_swap

    def _version_dirs(self) -> Iterator[tuple[int, Path]]:
        if not self.root.is_dir():
            return
        for child in self.root.iterdir():
            match = _VERSION_RE.match(child.name)
            if match and (child / META_FILE).is_file():
                yield int(match.group(1)), child

    def versions(self) -> list[ModelVersion]:
        return [self.get(path.name) for _, path in sorted(self._version_dirs())]

    def get(self, version: str) -> ModelVersion:
        path = self.root / version
        meta_path = path / META_FILE
        if not _VERSION_RE.match(version) or not meta_path.is_file():
            known = ", ".join(v.name for _, v in sorted(self._version_dirs())) or "none"
            raise RegistryError(f"model version '{version}' is not in the registry at {self.root} (known: {known})")
        meta = self._read_json(meta_path)
        # Registries written before roles.json kept the role in meta.json; a new version starts as a candidate.
        role = self._roles().get(version) or meta.get("role") or Role.CANDIDATE.value
        return ModelVersion(version=version, path=path, meta={**meta, "role": role})

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RegistryError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise RegistryError(f"{path} does not hold a JSON object")
        return data

    def _roles(self) -> dict[str, str]:
        path = self.root / ROLES_FILE
        return {str(k): str(v) for k, v in self._read_json(path).items()} if path.is_file() else {}

    def register(
        self,
        onnx_file: Path | None,
        torch_file: Path | None,
        meta: dict[str, Any],
    ) -> ModelVersion:
        """Copy the model files into a new version directory; returns the new version."""
        if onnx_file is None and torch_file is None:
            raise RegistryError("a model version needs an ONNX file, a .pt file, or both")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            if onnx_file is not None:
                shutil.copy2(onnx_file, staging / ONNX_FILE)
            if torch_file is not None:
                shutil.copy2(torch_file, staging / TORCH_FILE)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

        def write_meta(version: str, final: Path) -> None:
            full_meta = {"created": time.time(), **meta, "version": version}
            atomic_write_json(staging / META_FILE, full_meta)

        def next_number() -> int:
            return max((n for n, _ in self._version_dirs()), default=0) + 1

        return self.get(publish_next_version(staging, self.root, next_number, write_meta))

    def set_role(self, version: str, role: Role) -> None:
        """Record a version's role beside the versions (its own folder stays untouched)."""
        self.get(version)
        atomic_write_json(self.root / ROLES_FILE, {**self._roles(), version: role.value})

    def pointers(self) -> dict[str, str | None]:
        path = self.root / POINTERS_FILE
        if not path.is_file():
            return {"champion": None, "shadow": None}
        data = self._read_json(path)
        return {"champion": data.get("champion"), "shadow": data.get("shadow")}

    def set_pointer(self, role: Role, version: str | None) -> dict[str, str | None]:
        """Point ``champion`` or ``shadow`` at a version (None clears shadow); returns the new pointers."""
        if role not in (Role.CHAMPION, Role.SHADOW):
            raise RegistryError(f"only champion and shadow are pointers, not {role.value}")
        if version is None and role is Role.CHAMPION:
            raise RegistryError("the champion pointer cannot be cleared")
        if version is not None:
            self.get(version)
        pointers = self.pointers()
        previous = pointers[role.value]
        pointers[role.value] = version
        atomic_write_json(self.root / POINTERS_FILE, pointers)
        if version is not None:
            self.set_role(version, role)
        if previous and previous != version and previous not in pointers.values():
            self.set_role(previous, Role.RETIRED if role is Role.CHAMPION else Role.CANDIDATE)
        if self._on_swap is not None and previous != version:
            self._on_swap("model_pointer_changed", {"pointer": role.value, "from": previous, "to": version})
        return pointers

    def latest(self) -> ModelVersion:
        versions = self.versions()
        if not versions:
            raise RegistryError(f"the registry at {self.root} is empty: train a model or run 'visionloop models init'")
        return versions[-1]

    def resolve(self, spec: str) -> ModelVersion:
        """A version named by 'champion', 'latest' (the newest) or its number ('v3')."""
        if spec == "champion":
            return self.champion()
        if spec == "latest":
            return self.latest()
        return self.get(spec)

    def champion(self) -> ModelVersion:
        version = self.pointers()["champion"]
        if version is None:
            raise RegistryError(
                f"the registry at {self.root} has no champion yet: run 'make model' (or 'visionloop models "
                "init') to build one, or set serving.model to a model file"
            )
        return self.get(version)


@dataclass(frozen=True)
class ResolvedModel:
    """A model file to load, with a label for results ('v3', or 'file:<name>') and its class names if known."""

    path: Path
    label: str
    class_names: list[str]


def is_model_file(spec: str) -> bool:
    """A spec names a file (not a registry version) when it has a model suffix or a path separator."""
    return spec.endswith(MODEL_SUFFIXES) or "/" in spec or os.sep in spec


def resolve_model(registry: ModelRegistry, spec: str, prefer: str = ONNX_FILE) -> ResolvedModel:
    """The one rule for naming a model: 'champion', 'latest', a version ('v3') or a model file path.

    For a registry version, ``prefer`` (``model.onnx`` or ``model.pt``) is taken when the version has it, else the
    other file. Every miss is a ``ModelLoadError`` or ``RegistryError`` that names what was asked for.
    """
    if is_model_file(spec):
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ModelLoadError(f"model file '{path}' does not exist")
        return ResolvedModel(path, f"file:{path.name}", [])
    version = registry.resolve(spec)
    first, second = version.path / prefer, version.path / (TORCH_FILE if prefer == ONNX_FILE else ONNX_FILE)
    path = first if first.is_file() else second
    if not path.is_file():
        raise ModelLoadError(
            f"model version {version.version} has neither {prefer} nor {second.name} at {version.path}"
        )
    return ResolvedModel(path, version.version, version.class_names)
