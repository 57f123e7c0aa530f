"""The loop up to labels as data, through the whole service: frames sent to the API are selected, land in a real
Label Studio with the champion's pre-annotations, come back (webhook and reconciliation) as YOLO labels, and
become a data set version announced on the events stream."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import httpx
import pytest
import redis

from tests.conftest import free_port, make_settings, wait_for
from visionloop.cli.service import VisionloopService
from visionloop.core.streams import StreamNames
from visionloop.labeling.label_studio_client import LabelStudioClient
from visionloop.labeling.label_studio_server import LabelStudioAccount
from visionloop.simulation.clips import render_clip

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer test-token-123"}
# One star box in the middle of a 320x180 frame, as Label Studio's rectangle tool sends it.
REGION = {
    "from_name": "label",
    "to_name": "image",
    "type": "rectanglelabels",
    "original_width": 320,
    "original_height": 180,
    "value": {"x": 25.0, "y": 25.0, "width": 50.0, "height": 50.0, "rotation": 0, "rectanglelabels": ["star"]},
}


def test_frames_to_label_studio_and_back_as_a_data_set_version(module_var_dir: Path) -> None:
    settings = make_settings(
        module_var_dir,
        labeling__enabled="true",
        labeling__label_studio_port=str(free_port()),
        labeling__stratum_s="0",  # no strata: each frame is judged as it comes...
        labeling__random_rate="1.0",  # ...and the stand-in model finds nothing: let the control arm pick every frame
        labeling__cut_every="2",
        labeling__reconcile_interval_s="1",
    )
    images = [render_clip(frames=1, width=320, height=180, seed=30 + i, domain="ABC"[i])[0] for i in range(3)]
    with VisionloopService(settings) as service:
        assert service.label_studio_url is not None
        api = httpx.Client(base_url=service.api_url, timeout=60)
        for index, image in enumerate(images):
            jpeg = cv2.imencode(".jpg", image)[1].tobytes()
            response = api.post(
                "/v1/detect", params={"camera_id": "lab"}, headers=AUTH, files={"image": (f"{index}.jpg", jpeg)}
            )
            assert response.status_code == 200
        client = LabelStudioClient(service.label_studio_url, LabelStudioAccount().token)
        project = api.get("/v1/labeling/status").json()["project_id"]
        tasks = wait_for(lambda: (t := client._query(project, [])) and len(t) == 3 and t, timeout_s=60, interval_s=0.5)
        assert all(t["data"]["image"].startswith("/data/local-files/?d=frames/") for t in tasks)
        assert all(t["predictions"][0]["model_version"] == "v1" for t in tasks)
        assert {t["data"]["sampler"] for t in tasks} == {"random"}
        for task in tasks[:2]:
            client.annotate(task["id"], [REGION])
        incoming = module_var_dir / "labels" / "incoming" / "labels"
        wait_for(lambda: incoming.is_dir() and len(list(incoming.glob("*.txt"))) == 2, timeout_s=60, interval_s=0.5)
        for label in incoming.glob("*.txt"):
            assert label.read_text().split() == ["3", "0.500000", "0.500000", "0.500000", "0.500000"]
        versions = module_var_dir / "datasets" / "labels"
        wait_for(lambda: (versions / "v1" / "manifest.json").is_file(), timeout_s=60, interval_s=0.5)
        manifest = json.loads((versions / "v1" / "manifest.json").read_text())
        assert sum(c["images"] for c in manifest["counts"].values()) == 2
        events = redis.Redis.from_url(service.redis_url).xrange(StreamNames().events)
        assert any(f[b"kind"] == b"dataset_version_created" for _, f in events)
        assert api.post("/v1/labeling/sync").status_code == 401
        synced = api.post("/v1/labeling/sync", headers=AUTH)
        assert synced.status_code == 200 and "imported" in synced.json()
        assert api.post("/v1/labeling/webhook", content=b"{}").status_code == 401
        client.close()
