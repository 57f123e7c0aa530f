"""A camera's frames as H.264: the raw stream the RTSP server sends live (with an index of where each frame's bytes
are), and the same stream in an MP4 for people and tools."""

from __future__ import annotations

import json
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

STREAM_FILE, INDEX_FILE, VIDEO_FILE = "stream.h264", "stream.idx.json", "video.mp4"


class H264Writer:
    """Encodes frames one by one to a raw Annex-B file, every keyframe carrying its SPS/PPS (a client may join at any
    keyframe), and records each frame's byte range and whether it is a keyframe."""

    def __init__(self, path: Path, width: int, height: int, fps: int, gop: int, bitrate_kbps: int | None) -> None:
        self.path, self.fps = path, fps
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.time_base, codec.framerate = Fraction(1, fps), Fraction(fps, 1)
        options = {"preset": "veryfast", "tune": "zerolatency", "threads": "1", "g": str(gop), "bf": "0"}
        options.update({"crf": "23"} if bitrate_kbps is None else {"b": f"{bitrate_kbps}k"})
        if bitrate_kbps is not None:
            codec.bit_rate = bitrate_kbps * 1000
        codec.options = options
        self._codec = codec
        self._file = path.open("wb")
        self.frames: list[tuple[int, int, bool]] = []  # offset, size, keyframe
        self._count = 0

    def write(self, image: npt.NDArray[np.uint8]) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._count
        self._count += 1
        self._emit(self._codec.encode(frame))

    def _emit(self, packets: Iterable[av.Packet]) -> None:  # type: ignore[type-arg]
        for packet in packets:
            data = bytes(packet)
            self.frames.append((self._file.tell(), len(data), bool(packet.is_keyframe)))
            self._file.write(data)

    def close(self) -> None:
        self._emit(self._codec.encode(None))
        self._file.close()
        index = {"fps": self.fps, "frames": self.frames}
        self.path.with_name(INDEX_FILE).write_text(json.dumps(index), encoding="utf-8")


def remux_to_mp4(stream: Path, out: Path, fps: int) -> None:
    """The raw stream in an MP4 container (no re-encoding), timed at ``fps``."""
    with av.open(str(stream), format="h264") as source, av.open(str(out), mode="w") as target:
        video = source.streams.video[0]
        copy = target.add_stream_from_template(video)
        copy.time_base = Fraction(1, fps)
        for index, packet in enumerate(source.demux(video)):
            if packet.size == 0:
                continue
            packet.pts = packet.dts = index
            packet.time_base = Fraction(1, fps)
            packet.stream = copy
            target.mux(packet)


def read_index(path: Path) -> list[tuple[int, int, bool]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(int(o), int(s), bool(k)) for o, s, k in data["frames"]]
