"""H.264 over RTP: packets, the SDP's track, and access units closed by the marker bit, torn ones dropped."""

from __future__ import annotations

import base64
import struct

import pytest

from visionloop.streaming.rtp_h264 import (
    START_CODE,
    H264Depacketizer,
    RtpError,
    RtpPacket,
    h264_track,
    session_control,
    starts_decoding,
)

SPS = bytes([0x67, 0x42, 0xC0, 0x1E, 0xDA])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65]) + bytes(range(1, 200))
SLICE = bytes([0x41]) + bytes(range(50, 90))


def rtp(payload: bytes, seq: int, ts: int, marker: bool = False, pt: int = 96, extra: bytes = b"") -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts, 0x1234) + extra + payload


def stap_a(*units: bytes) -> bytes:
    return bytes([0x18]) + b"".join(struct.pack("!H", len(u)) + u for u in units)


def fu_a(unit: bytes, pieces: int) -> list[bytes]:
    indicator, kind, body = (unit[0] & 0xE0) | 28, unit[0] & 0x1F, unit[1:]
    size = -(-len(body) // pieces)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        bytes([indicator, (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0) | kind]) + chunk
        for i, chunk in enumerate(chunks)
    ]


def feed(depacketizer: H264Depacketizer, packets: list[bytes]) -> list[bytes]:
    return [unit for packet in packets for unit in depacketizer.push(RtpPacket.parse(packet))]


def annex_b(*units: bytes) -> bytes:
    return b"".join(START_CODE + u for u in units)


def test_a_keyframe_in_an_aggregate_and_fragments_is_one_access_unit_at_the_marker() -> None:
    fragments = fu_a(IDR, 3)
    packets = [rtp(stap_a(SPS, PPS), 1, 900)] + [
        rtp(f, 2 + i, 900, marker=i == len(fragments) - 1) for i, f in enumerate(fragments)
    ]
    depacketizer = H264Depacketizer(96)
    assert feed(depacketizer, packets[:-1]) == []  # nothing before the last packet
    assert depacketizer.push(RtpPacket.parse(packets[-1])) == [annex_b(SPS, PPS, IDR)]
    assert starts_decoding(annex_b(SPS, PPS, IDR)) and not starts_decoding(annex_b(SLICE))


def test_a_sender_without_markers_is_closed_by_the_next_timestamp() -> None:
    depacketizer = H264Depacketizer(96)
    units = feed(depacketizer, [rtp(SLICE, 1, 100), rtp(SLICE, 2, 200), rtp(SLICE, 3, 300)])
    assert units == [annex_b(SLICE), annex_b(SLICE)]


def test_a_lost_packet_drops_its_frame_only() -> None:
    fragments = fu_a(IDR, 3)
    depacketizer = H264Depacketizer(96)
    torn = [rtp(fragments[0], 1, 100), rtp(fragments[2], 3, 100, marker=True)]  # packet 2 lost
    assert feed(depacketizer, torn) == [] and depacketizer.dropped == 1
    assert feed(depacketizer, [rtp(SLICE, 4, 200, marker=True)]) == [annex_b(SLICE)]
    # a lost first fragment: the rest of the unit cannot be rebuilt
    assert feed(depacketizer, [rtp(fragments[1], 5, 300), rtp(fragments[2], 6, 300, marker=True)]) == []
    assert depacketizer.dropped == 2


def test_sequence_numbers_wrap_without_a_gap_and_other_payload_types_are_ignored() -> None:
    depacketizer = H264Depacketizer(96)
    assert feed(depacketizer, [rtp(SLICE, 0xFFFF, 1, True), rtp(SLICE, 0, 2, True)]) == [annex_b(SLICE)] * 2
    assert feed(depacketizer, [rtp(b"\x01\x02", 1, 3, True, pt=97)]) == [] and depacketizer.dropped == 0


def test_packets_with_csrcs_extensions_and_padding_are_read() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 1, 0x80 | 96, 7, 42, 1) + b"\x00\x00\x00\x05"
    extension = b"\xbe\xde\x00\x01" + b"\x01\x02\x03\x04"
    packet = RtpPacket.parse(header + extension + SLICE + b"\x00\x00\x03")
    assert (packet.marker, packet.sequence, packet.timestamp, packet.payload) == (True, 7, 42, SLICE)
    with pytest.raises(RtpError):
        RtpPacket.parse(b"\x80\x60")
    with pytest.raises(RtpError):
        RtpPacket.parse(b"\x40" + bytes(15))  # RTP version 1


SDP = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=camera",
        "a=control:rtsp://cam.local/live/",
        "m=audio 0 RTP/AVP 97",
        "a=rtpmap:97 L16/44100/2",
        "a=control:stream=1",
        "m=video 0 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={base64.b64encode(SPS).decode()},"
        f"{base64.b64encode(PPS).decode()};profile-level-id=42c01e",
        "a=control:stream=0",
        "",
    ]
)


def test_the_sdp_names_the_h264_track_its_control_and_parameter_sets() -> None:
    track = h264_track(SDP)
    assert track is not None
    assert (track.payload_type, track.control, track.parameter_sets) == (96, "stream=0", annex_b(SPS, PPS))
    assert session_control(SDP) == "rtsp://cam.local/live/"
    assert h264_track(SDP.replace("H264/90000", "H265/90000")) is None
    assert h264_track("v=0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n") is None
    broken = h264_track(SDP.replace(base64.b64encode(SPS).decode(), "!!not base64!!"))
    assert broken is not None and broken.parameter_sets == b""  # they still come in band
