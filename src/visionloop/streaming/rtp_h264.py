"""H.264 over RTP (RFC 6184): RTP headers, the SDP's video track, and access units closed by the marker bit.

Why this exists: FFmpeg's RTSP demuxer hands the H.264 parser one RTP payload at a time, and the parser closes a
frame only when the next frame's first packet arrives, so every frame waits one frame interval (67 ms at 15 fps)
before it can be decoded. The RTP marker bit says a frame is complete the moment its last packet arrives;
:class:`H264Depacketizer` uses it (and the timestamp changing, for senders that never set it), so a frame goes to
the decoder as soon as it is whole.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field

START_CODE = b"\x00\x00\x00\x01"
STAP_A, FU_A = 24, 28
NAL_IDR, NAL_SPS = 5, 7
RTP_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """A packet or description that cannot be read."""


@dataclass(frozen=True)
class RtpPacket:
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    payload: bytes

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Read one RTP packet, skipping its CSRC list, header extension and padding."""
        if len(data) < RTP_HEADER.size:
            raise RtpError(f"an RTP packet of {len(data)} bytes is shorter than its header")
        first, second, sequence, timestamp, _ssrc = RTP_HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError(f"RTP version {first >> 6}, not 2")
        offset = RTP_HEADER.size + 4 * (first & 0x0F)
        if first & 0x10:  # a header extension: 4 bytes of profile and length, then length 32-bit words
            if len(data) < offset + 4:
                raise RtpError("an RTP header extension runs past the packet")
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        end = len(data) - (data[-1] if first & 0x20 else 0)
        if offset > end:
            raise RtpError("an RTP packet's headers and padding are longer than the packet")
        return cls(bool(second & 0x80), second & 0x7F, sequence, timestamp, data[offset:end])


@dataclass(frozen=True)
class VideoTrack:
    """The H.264 track an SDP describes: its payload type, control URL and parameter sets (Annex B)."""

    payload_type: int
    control: str | None
    parameter_sets: bytes


def media_kinds(sdp: str) -> list[str]:
    """The kinds of media an SDP offers (video, audio, application...), in order."""
    return [media.split(" ", 1)[0].strip() for media in sdp.replace("\r\n", "\n").split("\nm=")[1:]]


def h264_track(sdp: str) -> VideoTrack | None:
    """The first H.264 video track in an SDP, or None (no video, or another codec)."""
    for media in sdp.replace("\r\n", "\n").split("\nm=")[1:]:
        lines = media.split("\n")
        if not lines[0].startswith("video"):
            continue
        attributes = [line[2:].strip() for line in lines[1:] if line.startswith("a=")]
        payload_type = _h264_payload_type(attributes)
        if payload_type is None:
            continue
        control = next((a[len("control:") :] for a in attributes if a.startswith("control:")), None)
        return VideoTrack(payload_type, control, _parameter_sets(attributes, payload_type))
    return None


def _h264_payload_type(attributes: list[str]) -> int | None:
    for attribute in attributes:
        if attribute.startswith("rtpmap:"):
            number, _, encoding = attribute[len("rtpmap:") :].partition(" ")
            if encoding.upper().startswith("H264/") and number.isdigit():
                return int(number)
    return None


def _parameter_sets(attributes: list[str], payload_type: int) -> bytes:
    """sprop-parameter-sets as Annex B NAL units (empty when absent or unreadable: they also come in band)."""
    for attribute in attributes:
        if not attribute.startswith(f"fmtp:{payload_type} "):
            continue
        for parameter in attribute.split(" ", 1)[1].split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.lower() == "sprop-parameter-sets" and value:
                try:
                    return b"".join(START_CODE + base64.b64decode(unit) for unit in value.split(",") if unit)
                except (binascii.Error, ValueError):
                    return b""
    return b""


@dataclass
class H264Depacketizer:
    """Rebuilds Annex B access units from RTP packets. A lost packet (a gap in sequence numbers) drops the access
    unit it belonged to, counted in ``dropped``: the decoder conceals a missing frame better than a torn one."""

    payload_type: int
    units: list[bytes] = field(default_factory=list)
    dropped: int = 0
    _timestamp: int | None = None
    _sequence: int | None = None
    _fragment: bytearray | None = None
    _damaged: bool = False

    def push(self, packet: RtpPacket) -> list[bytes]:
        """Feed one packet; returns the access units it completed (usually none or one)."""
        if packet.payload_type != self.payload_type:
            return []
        done: list[bytes] = []
        if self._sequence is not None and packet.sequence != (self._sequence + 1) & 0xFFFF:
            self._damaged = True  # a gap: whatever unit is open lost a piece
        self._sequence = packet.sequence
        if self._timestamp is not None and packet.timestamp != self._timestamp:
            done += self._close()  # a sender that never sets the marker: the next frame's first packet closes it
        self._timestamp = packet.timestamp
        self._add(packet.payload)
        if packet.marker:
            done += self._close()
        return done

    def _add(self, payload: bytes) -> None:
        if not payload:
            return
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self.units.append(payload)
        elif kind == STAP_A:
            self._add_aggregate(payload)
        elif kind == FU_A:
            self._add_fragment(payload)
        # other kinds (STAP-B, MTAP, FU-B, reserved) are not used in the non-interleaved mode cameras send

    def _add_aggregate(self, payload: bytes) -> None:
        offset = 1
        while offset + 2 <= len(payload):
            size = struct.unpack_from("!H", payload, offset)[0]
            unit = payload[offset + 2 : offset + 2 + size]
            if len(unit) != size or not size:
                self._damaged = True
                return
            self.units.append(unit)
            offset += 2 + size

    def _add_fragment(self, payload: bytes) -> None:
        if len(payload) < 2:
            self._damaged = True
            return
        header = payload[1]
        if header & 0x80:  # start: the unit's own header is rebuilt from the indicator's and the fragment's bits
            self._fragment = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
        elif self._fragment is None:
            self._damaged = True  # the start was lost
            return
        self._fragment += payload[2:]
        if header & 0x40:
            self.units.append(bytes(self._fragment))
            self._fragment = None

    def _close(self) -> list[bytes]:
        units, damaged = self.units, self._damaged or self._fragment is not None
        self.units, self._fragment, self._damaged = [], None, False
        if damaged:
            self.dropped += 1
            return []
        if not units:
            return []
        return [b"".join(START_CODE + unit for unit in units)]


def starts_decoding(access_unit: bytes) -> bool:
    """Whether a decoder can start at this access unit: it holds an IDR picture or a sequence parameter set."""
    position = access_unit.find(START_CODE)
    while position != -1 and position + 4 < len(access_unit):
        if access_unit[position + 4] & 0x1F in (NAL_IDR, NAL_SPS):
            return True
        position = access_unit.find(START_CODE, position + 4)
    return False


def session_control(sdp: str) -> str | None:
    """The session-level ``a=control`` (before the first media section): the URL aggregate PLAY goes to."""
    head = sdp.replace("\r\n", "\n").split("\nm=")[0]
    return next((line[len("a=control:") :].strip() for line in head.split("\n") if line.startswith("a=control:")), None)
