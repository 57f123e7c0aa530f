"""The model registry: ``<root>/<version>/`` holds ``model.onnx``, ``model.pt``, ``model.int8.onnx`` and ``meta.json``.

A published version is immutable: its files are read-only and nothing writes into its folder again (exports work
in a temporary folder), so the file a replica serves is the file that was evaluated. What changes over a model's
life lives beside the versions: which version is champion (and which runs in shadow) in ``<root>/pointers.json``
with the champions before it (what a rollback returns to), each version's role in ``<root>/roles.json`` and its
last A/B verdict in ``<root>/decisions.json``, all replaced atomically (write a temporary file, fsync, rename) so a
reader never sees half a pointer; every pointer change is appended to ``<root>/history.jsonl``. Changes take an
exclusive lock on ``<root>/registry.lock``: the API, the loop worker and the CLI may change pointers at the same time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.core import lifecycle
from visionloop.core.contracts import ModelRole
from visionloop.core.errors import ModelLoadError, RegistryError

ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"  # the same weights quantized to int8 (static, QDQ), made at export
TORCH_FILE = "model.pt"
META_FILE = "meta.json"
POINTERS_FILE = "pointers.json"
ROLES_FILE = "roles.json"
DECISIONS_FILE = "decisions.json"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = "registry.lock"
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
    def int8_path(self) -> Path:
        return self.path / INT8_ONNX_FILE

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
        int8_file: Path | None = None,
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
            if int8_file is not None:
                shutil.copy2(int8_file, staging / INT8_ONNX_FILE)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

        def write_meta(version: str, final: Path) -> None:
            # A role copied with another version's meta is not this one's: a new version starts as a candidate.
            full_meta = {"created": time.time(), **{k: v for k, v in meta.items() if k != "role"}, "version": version}
            atomic_write_json(staging / META_FILE, full_meta)

        def next_number() -> int:
            return max((n for n, _ in self._version_dirs()), default=0) + 1

        return self.get(publish_next_version(staging, self.root, next_number, write_meta))

    def set_role(self, version: str, role: Role) -> None:
        """Record a version's role beside the versions (its own folder stays untouched), if the lifecycle allows the
        change (:class:`lifecycle.IllegalRoleChange` if not). Champion and shadow come with their pointer only."""
        if role in (Role.CHAMPION, Role.SHADOW):
            raise RegistryError(f"{role.value} is a pointer: use set_pointer to make {version} the {role.value}")
        with self.locked():
            atomic_write_json(self.root / ROLES_FILE, {**self._roles(), **self._checked(version, role)})

    def _checked(self, version: str, role: Role, force: bool = False) -> dict[str, str]:
        """``{version: role}`` to write, once the lifecycle allowed the change from the version's role now."""
        lifecycle.check_change(version, lifecycle.role_of(self.get(version).meta.get("role")), role, force=force)
        return {version: role.value}

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's write lock (a file lock: other processes and replicas honour it too)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _pointer_file(self) -> dict[str, Any]:
        path = self.root / POINTERS_FILE
        return self._read_json(path) if path.is_file() else {}

    def pointers(self) -> dict[str, str | None]:
        data = self._pointer_file()
        return {"champion": data.get("champion"), "shadow": data.get("shadow")}

    def previous_champions(self) -> list[str]:
        """Champions before the current one, oldest first: what rollbacks return to."""
        return [str(v) for v in self._pointer_file().get("previous", [])]

    def set_pointer(
        self,
        role: Role,
        version: str | None,
        *,
        action: str = "set",
        by: str = "",
        rollback: bool = False,
        force: bool = False,
    ) -> dict[str, str | None]:
        """Point ``champion`` or ``shadow`` at a version (None clears shadow); returns the new pointers.

        A new champion pushes the old one onto the rollback stack; ``rollback=True`` pops it instead (the caller
        passes the version it popped). The change is appended to the history with ``action`` and ``by``. The roles it
        writes are checked against the lifecycle first; ``force`` (or a rollback) allows a rejected champion.
        """
        self._check_pointer(role, version)
        with self.locked():
            data = self._pointer_file()
            pointers: dict[str, str | None] = {"champion": data.get("champion"), "shadow": data.get("shadow")}
            previous_champions = [str(v) for v in data.get("previous", [])]
            previous = pointers[role.value]
            if previous == version:
                return pointers
            pointers[role.value] = version
            if role is Role.CHAMPION:
                previous_champions = lifecycle.champion_stack(previous_champions, previous, version, rollback)
                if pointers["shadow"] == version:
                    pointers["shadow"] = None  # a promoted shadow stops shadowing itself
            roles = self._checked(version, role, force or rollback) if version is not None else {}
            if previous and previous not in pointers.values():
                roles.update(self._checked(previous, lifecycle.demotion(role, self.get(previous).meta["role"])))
            atomic_write_json(self.root / POINTERS_FILE, {**pointers, "previous": previous_champions})
            if roles:
                atomic_write_json(self.root / ROLES_FILE, {**self._roles(), **roles})
            change = {"pointer": role.value, "from": previous, "to": version, "action": action, "by": by}
            with (self.root / HISTORY_FILE).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"ts": time.time(), **change}) + "\n")
        if self._on_swap is not None:
            self._on_swap("model_pointer_changed", change)
        return pointers

    def _check_pointer(self, role: Role, version: str | None) -> None:
        if role not in (Role.CHAMPION, Role.SHADOW):
            raise RegistryError(f"only champion and shadow are pointers, not {role.value}")
        if version is None and role is Role.CHAMPION:
            raise RegistryError("the champion pointer cannot be cleared")
        if version is not None:
            self.get(version)

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Pointer changes, oldest first (the last ``limit`` when given)."""
        path = self.root / HISTORY_FILE
        if not path.is_file():
            return []
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = [json.loads(line) for line in (lines[-limit:] if limit else lines)]
        return [row for row in rows if isinstance(row, dict)]

    def record_decision(self, version: str, verdict: dict[str, Any]) -> None:
        """Keep the last A/B verdict of a version (what a promotion without --force checks)."""
        self.get(version)
        with self.locked():
            path = self.root / DECISIONS_FILE
            decisions = self._read_json(path) if path.is_file() else {}
            atomic_write_json(path, {**decisions, version: {"ts": time.time(), **verdict}})

    def decision(self, version: str) -> dict[str, Any] | None:
        path = self.root / DECISIONS_FILE
        found = (self._read_json(path) if path.is_file() else {}).get(version)
        return dict(found) if isinstance(found, dict) else None

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
    precision: str = "fp32"


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
