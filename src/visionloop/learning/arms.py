"""Which sampler picked each human-labelled frame: the random control arm and the rest.

Frames of the random arm are the loop's unbiased evaluation set, so they must never be trained on; the other
frames (uncertainty, novelty, ...) were picked where the champion fails and are what a challenger learns from.
The labeling side records each frame's sampler in the labels version's manifest, per image in the cut ledger
(``incoming``: image file name -> {"stamp", "sampler", ...}). An image without a recorded sampler (a manifest
older than this bookkeeping) counts as ``unknown``: never as random, so it is neither trusted as unbiased nor
lost, and it is trained on like any picked frame.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from visionloop.learning.datasets import SPLITS, DatasetVersion, LabelledImage, read_images

LEDGER_KEY = "incoming"  # manifest: image file name -> {"stamp": ..., "sampler": ..., "skipped": ...}
SAMPLER_FIELD = "sampler"
RANDOM_ARM = "random"
UNKNOWN_ARM = "unknown"
# Inside settings.var.labels_incoming the labeling harvester leaves labelled frames before a cut: images/<frame_id>.jpg,
# labels/<frame_id>.txt (YOLO) and meta/<frame_id>.json (facts about the frame: its sampler, its camera). Here, below
# labeling, so that the harvester, the cuts and the accuracy monitor share one layout.
META_DIR = "meta"


def frame_meta_path(incoming: Path, frame_id: str) -> Path:
    return incoming / META_DIR / f"{frame_id}.json"


def image_files(version: DatasetVersion) -> dict[str, tuple[str, Path]]:
    """Image stem -> (split, path) of every original image of a version (oversampled copies left out)."""
    out: dict[str, tuple[str, Path]] = {}
    for rel in version.manifest["files"]:
        parts = Path(rel).parts
        if len(parts) == 3 and parts[0] == "images" and parts[1] in SPLITS and "__copy" not in parts[2]:
            out[Path(parts[2]).stem] = (parts[1], version.path / rel)
    return out


def samplers_of(version: DatasetVersion) -> dict[str, str]:
    """Image stem -> the sampler that picked it ('unknown' where the manifest does not say)."""
    ledger = version.manifest.get(LEDGER_KEY, {})
    by_stem = {Path(name).stem: entry.get(SAMPLER_FIELD) for name, entry in ledger.items() if isinstance(entry, dict)}
    return {stem: str(by_stem.get(stem) or UNKNOWN_ARM) for stem in image_files(version)}


@dataclass(frozen=True)
class ArmSplit:
    """The images of a labels version, by arm, each with the split it has in that version."""

    random: list[tuple[str, LabelledImage]]
    picked: list[tuple[str, LabelledImage]]  # every other sampler, 'unknown' included

    def counts(self) -> dict[str, int]:
        return {"random": len(self.random), "picked": len(self.picked)}


def split_by_arm(version: DatasetVersion) -> ArmSplit:
    """Read and validate every image of ``version`` and sort it into the random arm or the picked frames."""
    files = image_files(version)
    samplers = samplers_of(version)
    report = read_images([path for _, path in files.values()], len(version.manifest["class_names"]))
    random: list[tuple[str, LabelledImage]] = []
    picked: list[tuple[str, LabelledImage]] = []
    for image in sorted(report.images, key=lambda item: item.image.stem):
        split = files[image.image.stem][0]
        (random if samplers[image.image.stem] == RANDOM_ARM else picked).append((split, image))
    return ArmSplit(random, picked)


def counts_by_sampler(version: DatasetVersion) -> dict[str, int]:
    """How many images of the version each sampler picked (for lineage and reports)."""
    return dict(sorted(Counter(samplers_of(version).values()).items()))


def picked_stems(version: DatasetVersion) -> set[str]:
    """Stems of the version's images that are not in the random arm (without reading any image)."""
    return {stem for stem, sampler in samplers_of(version).items() if sampler != RANDOM_ARM}
