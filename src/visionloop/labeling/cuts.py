"""Data set versions cut from harvested labels, incrementally.

The harvester keeps writing frames and YOLO label files into ``var/labels/incoming``; every version cut from them
must be a whole data set (every label so far), yet reading, validating and copying every incoming file at every cut
grows quadratically with the labels. So each version records in its manifest (``incoming``) which incoming images
it was made from, with a stamp of their files (inode, size and modification time of image and label: the
harvester's atomic rewrite changes it). The next cut stats the incoming files, reads and validates only those that
are new or rewritten since, and takes everything else from the previous version, which is immutable, validated and
hashed (see ``DatasetStore.extend``). An image keeps the split it had; only images new to the data set are split,
by ``data.split``.

Each ledger entry also names the sampler that picked the image (``sampler``, from the harvester's
``meta/<frame_id>.json``; 'unknown' when there is none), so the learning loop can keep the random control arm out of
training (``learning.arms``).

The ledger lives in the version itself rather than in Redis, so it can never disagree with the files it describes:
a lost or flushed Redis, or a deleted version, at worst makes a cut read more than it had to, never lose a label.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionloop.learning.arms import LEDGER_KEY, SAMPLER_FIELD, UNKNOWN_ARM, frame_meta_path
from visionloop.learning.datasets import (
    DatasetStore,
    DatasetVersion,
    images_in,
    label_path_for,
    read_images,
    stratified_split,
)


def read_sampler(incoming: Path, frame_id: str) -> str:
    """The sampler the harvester recorded for a frame; 'unknown' when it recorded none (or the file is unreadable)."""
    try:
        meta = json.loads(frame_meta_path(incoming, frame_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return UNKNOWN_ARM
    sampler = meta.get(SAMPLER_FIELD) if isinstance(meta, dict) else None
    return str(sampler) if sampler else UNKNOWN_ARM


def file_stamp(image: Path) -> str:
    """What changes when the harvester rewrites an image or its label file (it writes a new file, then renames)."""

    def one(path: Path) -> str:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return "-"
        return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"

    return f"{one(image)}/{one(label_path_for(image))}"


@dataclass(frozen=True)
class Cut:
    version: DatasetVersion
    images: int  # in the new version, old and new
    read: int  # incoming images (and their labels) read and validated for this cut
    skipped: list[str]  # "path: reason" of every incoming file left out, as the manifest lists them


class IncrementalCutter:
    """Cuts the next version of one data set from an incoming YOLO folder (``images/``, ``labels/``)."""

    def __init__(
        self,
        store: DatasetStore,
        name: str,
        incoming: Path,
        class_names: Sequence[str],
        split: tuple[float, float, float],
        seed: int = 0,
    ) -> None:
        self._store, self._name, self._incoming = store, name, incoming
        self._class_names, self._split, self._seed = list(class_names), split, seed

    def cut(self, meta: dict[str, Any] | None = None) -> Cut | None:
        """Publish the next version, or None when no incoming file is new or changed (or none is usable)."""
        base, manifest = self._base()
        ledger: dict[str, dict[str, str]] = dict(manifest.get(LEDGER_KEY, {}))
        stamps = {image: file_stamp(image) for image in self._candidates()}
        fresh = [image for image, stamp in stamps.items() if ledger.get(image.name, {}).get("stamp") != stamp]
        if not fresh:
            return None
        report = read_images(fresh, len(self._class_names))
        by_stem = {image.stem: image for image in fresh}
        for image in fresh:
            ledger[image.name] = {"stamp": stamps[image], SAMPLER_FIELD: read_sampler(self._incoming, image.stem)}
        for path, reason in report.bad:
            ledger[by_stem[path.stem].name]["skipped"] = f"{path}: {reason}"

        old_split = self._splits_of(manifest)
        splits = stratified_split([i for i in report.images if i.image.stem not in old_split], self._split, self._seed)
        for item in report.images:
            if item.image.stem in old_split:  # rewritten: the new files, in the split the image already had
                splits[old_split[item.image.stem]].append(item)
        # An image already in the data set whose rewritten files are now unusable leaves it: its label is stale.
        drop = {path.stem for path, _ in report.bad if path.stem in old_split}
        total = len((set(old_split) - drop) | {item.image.stem for item in report.images})
        if (not report.images and not drop) or not total:
            return None  # nothing usable changed, or nothing usable is left
        skipped = sorted(entry["skipped"] for entry in ledger.values() if "skipped" in entry)
        full_meta = {**(meta or {}), "skipped": skipped, LEDGER_KEY: ledger}
        if base is None:
            version = self._store.create(self._name, splits, self._class_names, meta=full_meta)
        else:
            version = self._store.extend(base, splits, meta=full_meta, drop=drop)
        return Cut(version, total, len(fresh), skipped)

    def _base(self) -> tuple[DatasetVersion | None, dict[str, Any]]:
        """The latest version and its manifest, if it can be extended (same classes); else a cut starts afresh."""
        versions = self._store.versions(self._name)
        if not versions:
            return None, {}
        manifest = versions[-1].manifest
        if manifest.get("class_names") != self._class_names:
            return None, {}
        return versions[-1], manifest

    def _candidates(self) -> list[Path]:
        images = self._incoming / "images"
        return images_in(images) if images.is_dir() else []

    @staticmethod
    def _splits_of(manifest: dict[str, Any]) -> dict[str, str]:
        """Image stem -> split, from a manifest's file list (``images/<split>/<stem>.<ext>``)."""
        out: dict[str, str] = {}
        for rel in manifest.get("files", {}):
            parts = Path(rel).parts
            if len(parts) == 3 and parts[0] == "images" and "__copy" not in parts[2]:
                out[Path(parts[2]).stem] = parts[1]
        return out
