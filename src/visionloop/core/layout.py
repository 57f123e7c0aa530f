"""Where things are: the shipped configs, and the one map of ``var/`` that every part asks, so no path is spelled
twice.

``settings.var`` gives the layout of the configured ``paths.var_dir``; a benchmark or a test that keeps its own state
builds one on another root with ``VarLayout(root)``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

CHECKOUT_ROOT = Path(__file__).resolve().parents[3]  # a source checkout's root: src/visionloop/core/layout.py
# Where a wheel installs configs/ (pyproject's data-files): an installed copy has no checkout around it.
SHARED_DATA = Path(sys.prefix) / "share" / "visionloop"


def project_path(path: Path) -> Path:
    """A path the settings give relative to the project (``configs/domains.yaml``): in the checkout, else in the
    installed copy's shared data; absolute paths stay as they are, and a missing file keeps its checkout path so the
    error names where it was looked for."""
    path = path.expanduser()
    if path.is_absolute():
        return path
    in_checkout = CHECKOUT_ROOT / path
    installed = SHARED_DATA / path
    return installed if not in_checkout.exists() and installed.exists() else in_checkout


def shipped_config(name: str) -> Path:
    """One of the configs visionloop ships (``default.yaml``, ``domains.yaml``, ``cameras.yaml``)."""
    return project_path(Path("configs") / name)


@dataclass(frozen=True)
class VarLayout:
    """The folders and files below one ``var/`` root."""

    root: Path

    @property
    def models(self) -> Path:
        """The model registry (versions, pointers, roles, history)."""
        return self.root / "models"

    @property
    def datasets(self) -> Path:
        """Data set versions (``<name>/v<N>/``, YOLO format, immutable)."""
        return self.root / "datasets"

    @property
    def runs(self) -> Path:
        """Training runs (Ultralytics' output folders), kept for their logs and plots."""
        return self.root / "runs"

    @property
    def exports(self) -> Path:
        """Models exported on request (``visionloop models export``)."""
        return self.root / "exports"

    @property
    def ultralytics(self) -> Path:
        """Ultralytics' own config dir (offline settings, fonts): YOLO_CONFIG_DIR."""
        return self.root / "ultralytics"

    @property
    def redis(self) -> Path:
        """The embedded redis-server's data (AOF)."""
        return self.root / "redis"

    @property
    def events_pending(self) -> Path:
        """Audit events written while Redis was away, sent when it is back."""
        return self.root / "events.pending.jsonl"

    @property
    def label_studio(self) -> Path:
        """The local Label Studio's data (its database, media)."""
        return self.root / "label-studio"

    @property
    def label_studio_files(self) -> Path:
        """Frames queued for review, served to Label Studio as local files."""
        return self.root / "label-studio-files"

    @property
    def labels_incoming(self) -> Path:
        """Labelled frames harvested from Label Studio, waiting for the next cut of the labels data set."""
        return self.root / "labels" / "incoming"

    @property
    def unlabelled(self) -> Path:
        """A bounded sample of the cameras' frames nobody labelled: what a challenger adapts to (pseudo-labels,
        batch-norm statistics)."""
        return self.root / "unlabelled"

    @property
    def simulator(self) -> Path:
        """Clips rendered for the simulated cameras."""
        return self.root / "simulator"

    @property
    def dashboard(self) -> Path:
        """The dashboard's settings file and its log."""
        return self.root / "dashboard"

    @property
    def cluster_demo_report(self) -> Path:
        """What the two-node demo measured."""
        return self.root / "cluster-demo.json"
