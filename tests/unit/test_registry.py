from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionloop.core.errors import RegistryError
from visionloop.core.registry import ModelRegistry, Role


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    onnx, pt = tmp_path / "a.onnx", tmp_path / "a.pt"
    onnx.write_bytes(b"onnx")
    pt.write_bytes(b"pt")
    return onnx, pt


def test_register_numbers_versions_and_keeps_lineage(tmp_path: Path, files: tuple[Path, Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    first = registry.register(*files, meta={"source": "test"})
    second = registry.register(files[0], None, meta={"parent": first.version})
    assert (first.version, second.version) == ("v1", "v2")
    assert first.onnx_path.read_bytes() == b"onnx" and first.torch_path.read_bytes() == b"pt"
    assert not second.torch_path.exists()
    assert second.meta["parent"] == "v1" and second.meta["role"] == "candidate"
    assert [v.version for v in registry.versions()] == ["v1", "v2"]


def test_pointer_swaps_update_roles(tmp_path: Path, files: tuple[Path, Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    v1 = registry.register(*files, meta={}).version
    v2 = registry.register(*files, meta={}).version
    registry.set_pointer(Role.CHAMPION, v1)
    registry.set_pointer(Role.SHADOW, v2)
    assert registry.pointers() == {"champion": "v1", "shadow": "v2"}
    assert registry.get(v2).meta["role"] == "shadow"
    registry.set_pointer(Role.CHAMPION, v2)  # promotion
    registry.set_pointer(Role.SHADOW, None)
    assert registry.champion().version == "v2"
    assert registry.get(v1).meta["role"] == "retired"
    assert registry.get(v2).meta["role"] == "champion"
    # The pointer file is always whole JSON, and no temporary files are left behind.
    assert json.loads((tmp_path / "models" / "pointers.json").read_text())["champion"] == "v2"
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("bad", ["v9", "../etc", "latest"])
def test_unknown_versions_are_errors_listing_known_ones(tmp_path: Path, files: tuple[Path, Path], bad: str) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.register(*files, meta={})
    with pytest.raises(RegistryError, match=r"known: v1"):
        registry.get(bad)
    with pytest.raises(RegistryError):
        registry.set_pointer(Role.CHAMPION, bad)


def test_no_champion_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="make model"):
        ModelRegistry(tmp_path / "models").champion()


def test_champion_cannot_be_cleared(tmp_path: Path, files: tuple[Path, Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.set_pointer(Role.CHAMPION, registry.register(*files, meta={}).version)
    with pytest.raises(RegistryError, match="cannot be cleared"):
        registry.set_pointer(Role.CHAMPION, None)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode) for p in sorted(folder.rglob("*"))}


def test_a_published_version_is_read_only_and_never_rewritten(tmp_path: Path, files: tuple[Path, Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    v1 = registry.register(*files, meta={"source": "test"})
    v2 = registry.register(*files, meta={"source": "test"})
    for path in v1.path.iterdir():
        assert path.stat().st_mode & 0o222 == 0, f"{path.name} is writable"
    before = _snapshot(v1.path)
    registry.set_pointer(Role.CHAMPION, v1.version)
    registry.set_pointer(Role.SHADOW, v2.version)
    registry.set_pointer(Role.CHAMPION, v2.version)  # v1 retires: its role changes, its folder does not
    assert registry.get(v1.version).meta["role"] == "retired"
    assert _snapshot(v1.path) == before
    assert "role" not in json.loads((v1.path / "meta.json").read_text())  # roles live in roles.json, beside it
