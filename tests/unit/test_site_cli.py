"""``visionloop world site`` writes a site as the issue describes it; ``visionloop world frame-number`` reads the frame
clock back from a picture file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "visionloop.cli", *args], capture_output=True, text=True, timeout=300)


def test_world_site_writes_videos_truth_and_a_description_and_the_clock_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "site"
    done = _cli("world", "site", "--cameras", "2", "--seconds", "2", "--seed", "3", "--out", str(out),
                "--shift", "cam2:1:C")  # fmt: skip
    assert done.returncode == 0, done.stderr
    site = json.loads((out / "site.json").read_text())
    assert list(site["cameras"]) == ["cam1", "cam2"] and site["cameras"]["cam2"]["shifts"][0]["domain"] == "C"
    line = json.loads((out / "cam1" / "truth.jsonl").read_text().splitlines()[29])
    assert line["frame"] == 29 and line["t"] == round(29 / 15, 4)
    assert all(set(o) == {"id", "cls", "box"} and len(o["box"]) == 4 for o in line["objects"])
    with av.open(str(out / "cam2" / "video.mp4")) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (640, 360)
        picture = next(f for i, f in enumerate(video.decode(video=0)) if i == 17).to_ndarray(format="bgr24")
    cv2.imwrite(str(tmp_path / "frame.png"), picture)
    read = _cli("world", "frame-number", str(tmp_path / "frame.png"))
    assert read.returncode == 0 and read.stdout.strip() == "17"
    cv2.imwrite(str(tmp_path / "plain.png"), picture[:200])  # the strip cut off: no clock
    missing = _cli("world", "frame-number", str(tmp_path / "plain.png"), "--json")
    assert missing.returncode == 1 and json.loads(missing.stdout)["frame"] is None


def test_a_bad_shift_is_one_clear_error(tmp_path: Path) -> None:
    bad = _cli("world", "site", "--out", str(tmp_path / "s"), "--shift", "cam9:10:B")
    assert bad.returncode != 0 and "cam9" in (bad.stdout + bad.stderr) and "Traceback" not in bad.stderr
