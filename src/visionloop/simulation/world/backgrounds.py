"""Backgrounds: textures, gradients, noise, and real photos that installed packages ship (no download)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
KINDS = ("texture", "gradient", "noise", "photo")


@lru_cache(maxsize=1)
def _photo_paths() -> tuple[Path, ...]:
    """Photos found inside installed packages (matplotlib's samples, Ultralytics' assets), sorted for determinism."""
    found: list[Path] = []
    try:
        import matplotlib

        sample = Path(matplotlib.get_data_path()) / "sample_data"
        found += [p for p in sample.glob("*.jpg")] + [p for p in sample.glob("*.png") if "logo" not in p.name]
    except ImportError:
        pass
    try:
        import importlib.util

        spec = importlib.util.find_spec("ultralytics")
        if spec and spec.origin:
            found += list((Path(spec.origin).parent / "assets").glob("*.jpg"))
    except ImportError:
        pass
    return tuple(sorted(found, key=lambda p: p.name))


@lru_cache(maxsize=8)
def _load_photo(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read background photo {path}")
    return np.asarray(image, dtype=np.uint8)


def _texture(rng: np.random.Generator, height: int, width: int) -> Image:
    cells = int(rng.integers(4, 24))
    coarse = rng.integers(30, 226, size=(cells, max(2, cells * width // height), 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, rng.uniform(4, 18), size=(height, width, 1))
    return np.asarray(np.clip(smooth.astype(np.float32) + fine, 0, 255), dtype=np.uint8)


def _gradient(rng: np.random.Generator, height: int, width: int) -> Image:
    start, end = rng.uniform(20, 235, size=(2, 3))
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = np.cos(angle) * xx / width + np.sin(angle) * yy / height
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return np.asarray(start + (end - start) * t[..., None], dtype=np.uint8)


def _noise(rng: np.random.Generator, height: int, width: int) -> Image:
    base = rng.uniform(40, 200, size=3)
    return np.clip(base + rng.normal(0, 35, size=(height, width, 3)), 0, 255).astype(np.uint8)


def _photo(rng: np.random.Generator, height: int, width: int) -> Image:
    paths = _photo_paths()
    if not paths:
        return _texture(rng, height, width)
    photo = _load_photo(paths[int(rng.integers(len(paths)))])
    ph, pw = photo.shape[:2]
    crop = float(rng.uniform(0.4, 1.0))
    ch, cw = max(8, int(ph * crop)), max(8, int(pw * crop))
    y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    patch = photo[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.asarray(cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def render_background(rng: np.random.Generator, kind: str, height: int, width: int) -> Image:
    if kind == "mixed":
        kind = KINDS[int(rng.integers(len(KINDS)))]
    makers = {"texture": _texture, "gradient": _gradient, "noise": _noise, "photo": _photo}
    return makers[kind](rng, height, width)
