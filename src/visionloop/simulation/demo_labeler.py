"""The demo's SIMULATED labeler: answers the local Label Studio from the synthetic world's ground truth, in the
background, so labels come back and become data set versions while the demo runs."""

from __future__ import annotations

import logging
import threading

from visionloop.core.settings import Settings
from visionloop.simulation.simulated_labeler import TruthLookup

log = logging.getLogger(__name__)


class DemoLabeler:
    def __init__(self, settings: Settings, label_studio_url: str, project_id: int, truth: TruthLookup) -> None:
        from visionloop.labeling.label_studio_client import LabelStudioClient
        from visionloop.labeling.label_studio_server import LabelStudioAccount
        from visionloop.simulation.simulated_labeler import SimulatedLabeler

        self._client = LabelStudioClient(label_studio_url, LabelStudioAccount().token)
        self.labeler = SimulatedLabeler(
            self._client,
            project_id,
            settings.var.label_studio_files,
            truth,
            settings.model.class_names,
            error_rate=0.05,
        )
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="simulated-labeler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self.answered += self.labeler.label_pending(limit=20)
            except Exception as exc:  # the demo goes on without labels rather than failing
                log.warning("simulated labeler round failed: %s", exc)

    def __enter__(self) -> DemoLabeler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._client.close()
