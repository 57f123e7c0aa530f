"""Run training, validation and export under a guard that records (and refuses) every non-loopback connection.

Used by test_learning.py in a fresh interpreter, so the guard is in place before Ultralytics is imported.
Prints one JSON object: the attempts it saw.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import sys
from pathlib import Path

ATTEMPTS: list[str] = []
_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(host: object) -> bool:
    if host in ("localhost", None, ""):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family == socket.AF_UNIX or (isinstance(address, tuple) and _is_loopback(address[0])):
        return _real_connect(self, address)  # type: ignore[arg-type]
    ATTEMPTS.append(f"connect {address}")
    raise OSError("network access refused by the test guard")


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    if _is_loopback(host):
        return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]
    ATTEMPTS.append(f"resolve {host}")
    raise socket.gaierror("name resolution refused by the test guard")


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


def main(work: Path) -> None:
    # The guard must catch a lookup, or an empty result would prove nothing.
    with contextlib.suppress(OSError):
        socket.getaddrinfo("example.invalid", 80)
    guard_works = ATTEMPTS == ["resolve example.invalid"]
    ATTEMPTS.clear()

    from visionloop.core.config import PACKAGE_ROOT
    from visionloop.core.offline import prepare_ultralytics
    from visionloop.simulation.world import load_domains, write_yolo_dataset

    prepare_ultralytics(work / "ultralytics")
    from ultralytics import YOLO

    domain = load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")["A"]
    data_yaml = write_yolo_dataset(domain, 9, 8, work / "data")
    model = YOLO("yolov8n.yaml")
    model.train(
        data=str(data_yaml),
        epochs=1,
        imgsz=64,
        batch=4,
        device="cpu",
        workers=0,
        amp=False,
        project=str(work / "runs"),
        name="t",
        exist_ok=True,
        verbose=False,
        plots=True,
    )
    best = work / "runs" / "t" / "weights" / "last.pt"
    YOLO(str(best)).val(
        data=str(data_yaml),
        imgsz=64,
        batch=4,
        device="cpu",
        plots=True,
        verbose=False,
        project=str(work / "runs"),
        name="v",
        exist_ok=True,
    )
    YOLO(str(best)).export(format="onnx", dynamic=True, imgsz=64, simplify=True, verbose=False)
    YOLO(str(best)).export(format="torchscript", imgsz=64, verbose=False)
    print(json.dumps({"guard_works": guard_works, "attempts": ATTEMPTS}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
