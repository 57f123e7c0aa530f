#!/usr/bin/python3
"""A small RTSP server that loops H.264 (Annex-B) files as cameras: the demo's and the tests' IP cameras.

A ``.wav`` file is served as an audio-only stream (L16), the tests' "camera" with no video track.

Runs with the system python3 (it needs PyGObject and GstRtspServer from Debian's packages, which a virtual
environment does not see). visionloop starts it through simulation/rtsp_cameras.py.

    /usr/bin/python3 simulation/rtsp_server.py --port 8554 --mount cam1=/path/a.264:15 --mount cam2=/path/b.264:15

Prints "READY <port>" once it listens; SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys

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


def launch_line(path: str, fps: int) -> str:
    if path.lower().endswith(".wav"):
        return f'( filesrc location="{path}" ! wavparse ! audioconvert ! rtpL16pay name=pay0 pt=97 )'
    return (
        f'( multifilesrc location="{path}" loop=true '
        f"caps=video/x-h264,stream-format=byte-stream,framerate={fps}/1 "
        "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def make_factory(path: str, fps: int, auth_role: str | None) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_shared(True)
    factory.set_launch(launch_line(path, fps))
    if auth_role:
        role, _ = Gst.Structure.from_string(
            f"{auth_role}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
        factory.add_role_from_structure(role)
    return factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", type=parse_mount, action="append", required=True)
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
    for name, path, fps in args.mount:
        mounts.add_factory(f"/{name}", make_factory(path, fps, role))
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
