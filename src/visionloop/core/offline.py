"""Keep Ultralytics off the network: call :func:`prepare_ultralytics` before anything imports ``ultralytics``.

Each network call Ultralytics makes, and what stops it (measured on Ultralytics 8.4):
online probe at import and the PyPI update check -> ``YOLO_OFFLINE=1``; pip auto-install of export
requirements -> ``YOLO_AUTOINSTALL=0`` (and onnxslim is a declared dependency); analytics -> ``sync=False``;
integration callbacks -> their settings off; the Arial.ttf download on every dataset check -> a font file
already in ``$YOLO_CONFIG_DIR/Ultralytics/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

_INTEGRATIONS_OFF = {
    "sync": False,
    "api_key": "",
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
}
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_prepared: Path | None = None


def require_prepared() -> None:
    """Fail loudly if Ultralytics would be imported without its offline settings (it would phone home and write
    ~/.config/Ultralytics)."""
    if _prepared is None:
        from visionloop.core.errors import VisionloopError

        raise VisionloopError("internal: call visionloop.offline.prepare_ultralytics() before using Ultralytics")


def _bundled_font() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def prepare_ultralytics(config_dir: Path) -> Any:
    """Point Ultralytics at a project-owned config dir with the network off; returns its settings object."""
    config_dir = config_dir.resolve()
    font_dir = config_dir / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        if not (font_dir / name).exists():
            shutil.copyfile(_bundled_font(), font_dir / name)
    # Environment, not settings: these are read by Ultralytics at import time, before any settings file.
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from ultralytics.utils import SETTINGS

    wanted = {
        **{key: value for key, value in _INTEGRATIONS_OFF.items() if key in SETTINGS},
        "datasets_dir": str(config_dir / "datasets"),
        "runs_dir": str(config_dir / "runs"),
        "weights_dir": str(config_dir / "weights"),
        "vscode_msg": False,
        "openvino_msg": False,
    }
    if any(SETTINGS.get(key) != value for key, value in wanted.items()):
        SETTINGS.update(wanted)  # type: ignore[no-untyped-call]
    global _prepared
    _prepared = config_dir
    return SETTINGS
