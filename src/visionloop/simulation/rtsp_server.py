#!/usr/bin/python3
"""A small RTSP server for simulated cameras: the demo's and the tests' IP cameras.

- ``--mount name=/path/a.264:15`` loops an H.264 (Annex-B) file from its start for each new session (clips).
- ``--live name=/path/stream.h264:15:EPOCH`` is a live camera of a simulated site: frame ``n`` of the stream (its
  byte range is in ``stream.idx.json`` beside it) leaves at wall time ``EPOCH + n / 15`` whether anyone watches or
  not, so a client that joins sees the current frame (from the next keyframe) and every consumer knows when each
  frame was sent. Nothing is rendered or encoded here: the frames were written ahead.
- A ``.wav`` file is served as an audio-only stream (L16), the tests' "camera" with no video track.

Runs with the system python3 (it needs PyGObject and GstRtspServer from Debian's packages, which a virtual
environment does not see). visionloop starts it through simulation/rtsp_cameras.py.

    /usr/bin/python3 rtsp_server.py --port 8554 --mount cam1=/path/a.264:15 --live cam2=/path/stream.h264:15:1765000000

Prints "READY <port>" once it listens; SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def parse_mount(text: str) -> tuple[str, str, int]:
    name, _, rest = text.partition("=")
    path, _, fps = rest.rpartition(":")
    if not name or not path or not fps.isdigit():
        raise argparse.ArgumentTypeError(f"mount must look like name=/path/file.264:15, got {text!r}")
    return name, path, int(fps)


def parse_live(text: str) -> tuple[str, str, int, float]:
    name, _, rest = text.partition("=")
    parts = rest.rsplit(":", 2)
    if not name or len(parts) != 3 or not parts[1].isdigit():
        raise argparse.ArgumentTypeError(f"live mount must look like name=/path/stream.h264:15:EPOCH, got {text!r}")
    try:
        epoch = float(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(f"live mount {text!r}: EPOCH must be a number of seconds") from None
    return name, parts[0], int(parts[1]), epoch


class LiveFeeder:
    """Pushes a pre-encoded stream's frames into a media's appsrc at their wall-clock times, from the next keyframe
    of the live position on; one per prepared media (the media is shared by its clients)."""

    def __init__(self, path: str, fps: int, epoch: float) -> None:
        with open(os.path.join(os.path.dirname(path), "stream.idx.json"), encoding="utf-8") as handle:
            self.frames = [(int(o), int(s), bool(k)) for o, s, k in json.load(handle)["frames"]]
        self.path, self.fps, self.epoch = path, fps, epoch

    def first_frame(self, now: float) -> int:
        """The first keyframe at or after the live position (a decoder can start there)."""
        live = max(0, int((now - self.epoch) * self.fps) + 1)
        count = len(self.frames)
        for n in range(live, live + count):
            if self.frames[n % count][2]:
                return n
        return live

    def attach(self, factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        source = media.get_element().get_child_by_name("src")
        stop = threading.Event()
        media.connect("unprepared", lambda *_: stop.set())
        threading.Thread(target=self._feed, args=(source, stop), daemon=True).start()

    def _feed(self, source: Gst.Element, stop: threading.Event) -> None:
        count = len(self.frames)
        with open(self.path, "rb") as stream:
            n = self.first_frame(time.time())
            while not stop.is_set():
                if n >= count and n % count == 0:
                    print(f"{self.path}: the site's video ended; it starts again (frame numbers repeat)", flush=True)
                delay = self.epoch + n / self.fps - time.time()
                if delay > 0 and stop.wait(delay):
                    return
                offset, size, _ = self.frames[n % count]
                stream.seek(offset)
                if source.emit("push-buffer", Gst.Buffer.new_wrapped(stream.read(size))) != Gst.FlowReturn.OK:
                    return
                n += 1


def live_factory(path: str, fps: int, epoch: float, auth_role: str | None) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_shared(True)
    factory.set_launch(
        "( appsrc name=src is-live=true do-timestamp=true format=time min-latency=0 max-latency=0 "
        f"caps=video/x-h264,stream-format=byte-stream,alignment=au,framerate={fps}/1 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    feeder = LiveFeeder(path, fps, epoch)
    factory.connect("media-configure", feeder.attach)
    _restrict(factory, auth_role)
    return factory


def launch_line(path: str, fps: int) -> str:
    if path.lower().endswith(".wav"):
        return f'( filesrc location="{path}" ! wavparse ! audioconvert ! rtpL16pay name=pay0 pt=97 )'
    if path.lower().endswith(".mjpeg"):  # concatenated JPEG pictures: a camera whose video is not H.264
        return (
            f'( multifilesrc location="{path}" loop=true caps=image/jpeg,framerate={fps}/1 '
            "! jpegparse ! rtpjpegpay name=pay0 pt=26 )"
        )
    return (
        f'( multifilesrc location="{path}" loop=true '
        f"caps=video/x-h264,stream-format=byte-stream,framerate={fps}/1 "
        "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def _restrict(factory: GstRtspServer.RTSPMediaFactory, auth_role: str | None) -> None:
    if auth_role:
        role, _ = Gst.Structure.from_string(
            f"{auth_role}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
        factory.add_role_from_structure(role)


def make_factory(path: str, fps: int, auth_role: str | None) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_shared(True)
    factory.set_launch(launch_line(path, fps))
    _restrict(factory, auth_role)
    return factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", type=parse_mount, action="append", default=[])
    parser.add_argument("--live", type=parse_live, action="append", default=[])
    parser.add_argument("--user", help="require RTSP basic authentication with this user")
    parser.add_argument("--password", default="")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    role = None
    if args.user:
        role = "camera-user"
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", role)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    if not args.mount and not args.live:
        parser.error("give at least one --mount or --live")
    for name, path, fps in args.mount:
        mounts.add_factory(f"/{name}", make_factory(path, fps, role))
    for name, path, fps, epoch in args.live:
        mounts.add_factory(f"/{name}", live_factory(path, fps, epoch, role))
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
