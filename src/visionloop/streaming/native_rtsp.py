"""RTSP cameras read by visionloop's own client and handed to the decoder the moment a frame is whole.

A frame read through FFmpeg's RTSP demuxer waits for the next frame to start before it can be decoded (see
:mod:`visionloop.streaming.rtp_h264`): at 15 fps that is 67 ms of every result's age. This source reads H.264 over
RTSP/TCP itself and decodes each access unit as its last RTP packet arrives. Anything else (another codec, UDP
transport, RTSPS) falls back to :class:`~visionloop.streaming.sources.PyAVSource`, so every camera still works.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

from visionloop.core.redaction import redact
from visionloop.streaming.rtp_h264 import (
    H264Depacketizer,
    RtpError,
    RtpPacket,
    h264_track,
    media_kinds,
    session_control,
    starts_decoding,
)
from visionloop.streaming.rtsp_client import Interleaved, RtspError, RtspSession, join_control
from visionloop.streaming.sources import (
    MAX_BAD_PACKETS_IN_A_ROW,
    STATUS_MEANINGS,
    DecodedFrame,
    FrameSource,
    PyAVSource,
    SourceError,
    live_decoder,
)

MEDIA_CHANNEL = 0  # interleaved=0-1: RTP on 0, RTCP on 1


def session_failure(exc: BaseException) -> SourceError:
    """What a failed RTSP exchange means, in the words the FFmpeg path uses for the same failures."""
    if isinstance(exc, RtspError) and exc.status in STATUS_MEANINGS:
        return SourceError(f"{STATUS_MEANINGS[exc.status]}: {exc}", permanent=True)
    if isinstance(exc, ConnectionRefusedError):
        return SourceError(f"connection refused (is the camera up?): {redact(str(exc))}", permanent=False)
    if isinstance(exc, socket.timeout | TimeoutError):
        return SourceError("timed out waiting for the camera", permanent=False)
    return SourceError(f"{type(exc).__name__}: {redact(str(exc))}", permanent=False)


class NativeRtspSource(FrameSource):
    """H.264 over RTSP/TCP through :class:`RtspSession`; other streams through PyAV."""

    def __init__(self, url: str, options: Any) -> None:
        super().__init__(url, options)
        self._session: RtspSession | None = None
        self._fallback: PyAVSource | None = None
        self._bad_in_a_row = 0

    @property
    def live(self) -> bool:
        return True

    def frames(self) -> Iterator[DecodedFrame]:
        session = self._session = RtspSession(self.url, self.options.open_timeout_s, self.options.read_timeout_s)
        try:
            session.connect()
            sdp, base = session.describe()
            kinds = media_kinds(sdp)
            if "video" not in kinds:  # as the FFmpeg path says it, without a second connection to learn it
                tracks = ", ".join(sorted(set(kinds))) or "none"
                raise SourceError(f"no video track in {redact(self.url)} (its tracks: {tracks})", permanent=True)
            track = h264_track(sdp)
            if track is not None:
                session.setup(join_control(base, track.control), session_control(sdp), base)
                session.play()
        except (OSError, RtspError) as exc:
            raise session_failure(exc) from None
        if track is None:  # video, but not H.264: FFmpeg knows every other codec
            self.close()
            yield from self._fall_back()
            return
        yield from self._decode_stream(session, H264Depacketizer(track.payload_type), track.parameter_sets)

    def _fall_back(self) -> Iterator[DecodedFrame]:
        fallback = self._fallback = PyAVSource(self.url, self.options)
        for frame in fallback.frames():
            self.corrupt_packets, self.last_corruption = fallback.corrupt_packets, fallback.last_corruption
            yield frame
        self.corrupt_packets, self.last_corruption = fallback.corrupt_packets, fallback.last_corruption

    def _decode_stream(
        self, session: RtspSession, depacketizer: H264Depacketizer, parameter_sets: bytes
    ) -> Iterator[DecodedFrame]:
        decoder = live_decoder("h264", self.options.decode_threads)
        started, self._bad_in_a_row = False, 0
        while (message := self._read(session)) is not None:
            for unit in self._units(message, depacketizer):
                if not started:
                    if not starts_decoding(unit):
                        continue  # nothing to decode against before the first keyframe
                    started, unit = True, parameter_sets + unit
                yield from self._decode_unit(decoder, unit)

    def _units(self, message: Interleaved, depacketizer: H264Depacketizer) -> list[bytes]:
        """The access units a packet completes; damage is counted, never fatal."""
        if message.channel != MEDIA_CHANNEL:
            return []  # RTCP from the camera
        dropped = depacketizer.dropped
        try:
            units = depacketizer.push(RtpPacket.parse(message.data))
        except RtpError as exc:
            self._corrupt(f"an unreadable RTP packet: {exc}")
            return []
        if depacketizer.dropped > dropped:
            self._corrupt("an RTP packet was lost: its frame was dropped")
        return units

    def _decode_unit(self, decoder: Any, unit: bytes) -> Iterator[DecodedFrame]:
        import av

        begun = time.perf_counter()
        pictures = self._decode(av.Packet(unit), decoder)
        if pictures is None:
            self._bad_in_a_row += 1
            if self._bad_in_a_row >= MAX_BAD_PACKETS_IN_A_ROW:
                raise SourceError(
                    f"the stream is corrupt: {self._bad_in_a_row} frames in a row could not be decoded "
                    f"(last: {self.last_corruption})",
                    permanent=False,
                )
            return
        self._bad_in_a_row = 0
        decode_ms = (time.perf_counter() - begun) * 1e3 / max(1, len(pictures))
        for picture in pictures:
            yield DecodedFrame(picture, decode_ms)

    def _read(self, session: RtspSession) -> Interleaved | None:
        try:
            return session.read()
        except (OSError, RtspError) as exc:
            raise SourceError(f"the stream broke off: {session_failure(exc)}", permanent=False) from None

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()
        fallback, self._fallback = self._fallback, None
        if fallback is not None:
            fallback.close()
