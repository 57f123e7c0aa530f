"""The RTSP client against a scripted camera on loopback: Digest authentication, interleaved media with a keep-alive
answer among it, control URLs, TEARDOWN, and errors that say what is wrong.

The camera here is a unit seam (it checks the Digest response the way a camera would); the client against a real
RTSP server (GStreamer's, Basic authentication) is tested in tests/integration/test_rtsp_cameras.py.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from visionloop.streaming.native_rtsp import session_failure
from visionloop.streaming.rtsp_client import RtspError, RtspSession, join_control

REALM, NONCE, USER, PASSWORD = "cam", "abc123", "viewer", "p@ss word"
SDP = b"v=0\r\ns=cam\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest_ok(method: str, authorization: str) -> bool:
    fields = dict(
        (name.strip(), value.strip().strip('"'))
        for name, _, value in (part.partition("=") for part in authorization[len("Digest ") :].split(","))
    )
    ha1, ha2 = md5(f"{USER}:{REALM}:{PASSWORD}"), md5(f"{method}:{fields['uri']}")
    expected = md5(f"{ha1}:{NONCE}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
    return fields["username"] == USER and fields["response"] == expected


class ScriptedCamera:
    """Answers one connection: Digest-protected DESCRIBE, SETUP, PLAY, then media with an answer to a keep-alive."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection, connection.makefile("rb") as reader:
            while True:
                request = self._request(reader)
                if request is None:
                    return
                method, _, headers = request
                self.requests.append(request)
                connection.sendall(self._answer(method, headers))

    def _request(self, reader: Any) -> tuple[str, str, dict[str, str]] | None:
        line = reader.readline()
        if not line:
            return None
        method, url, _ = line.decode().split(" ")
        headers: dict[str, str] = {}
        while (header := reader.readline().decode().strip()) != "":
            name, _, value = header.partition(":")
            headers[name.lower()] = value.strip()
        return method, url, headers

    def _answer(self, method: str, headers: dict[str, str]) -> bytes:
        cseq = headers["cseq"]
        if not digest_ok(method, headers.get("authorization", "Digest nc=0,cnonce=,uri=,username=,response=")):
            challenge = f'Digest realm="{REALM}", nonce="{NONCE}", qop="auth"'
            return f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: {challenge}\r\n\r\n".encode()
        if method == "DESCRIBE":
            head = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://127.0.0.1/live/\r\n"
            return f"{head}Content-Length: {len(SDP)}\r\n\r\n".encode() + SDP
        if method == "SETUP":
            return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: s1;timeout=1\r\n\r\n".encode()
        if method == "PLAY":  # the answer, then media at once; a keep-alive's answer comes between two packets
            return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode() + b"$\x00\x00\x03abc" + b"$\x01\x00\x01r"
        if method == "OPTIONS":
            return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS\r\n\r\n".encode() + b"$\x00\x00\x02de"
        return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode()  # TEARDOWN

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def camera() -> Iterator[ScriptedCamera]:
    scripted = ScriptedCamera()
    yield scripted
    scripted.close()


def test_digest_session_reads_media_past_a_keepalive_answer(camera: ScriptedCamera) -> None:
    url = f"rtsp://viewer:p%40ss%20word@127.0.0.1:{camera.port}/live"
    session = RtspSession(url, open_timeout_s=5, read_timeout_s=5)
    session.connect()
    sdp, base = session.describe()
    assert "H264" in sdp and base == "rtsp://127.0.0.1/live/"
    session.setup(join_control(base, "trackID=0"), None, base)
    session.play()
    packets = [session.read(), session.read()]
    time.sleep(0.6)  # the session times out after 1 s: a keep-alive is due at half of it
    packets.append(session.read())  # its answer comes before this packet and is passed over
    assert [(p.channel, p.data) for p in packets if p] == [(0, b"abc"), (1, b"r"), (0, b"de")]
    session.close()
    camera.thread.join(5)
    methods = [method for method, _, _ in camera.requests]
    assert methods == ["DESCRIBE", "DESCRIBE", "SETUP", "PLAY", "OPTIONS", "TEARDOWN"]  # challenged once
    assert camera.requests[2][1] == "rtsp://127.0.0.1/live/trackID=0"
    assert all("p@ss" not in url and "viewer" not in url for _, url, _ in camera.requests)
    assert camera.requests[2][2]["transport"] == "RTP/AVP/TCP;unicast;interleaved=0-1"
    assert all(headers.get("session") == "s1" for _, _, headers in camera.requests[3:])


def test_wrong_password_and_refused_connection_say_what_is_wrong(camera: ScriptedCamera) -> None:
    session = RtspSession(f"rtsp://viewer:wrong@127.0.0.1:{camera.port}/live", 5, 5)
    session.connect()
    with pytest.raises(RtspError) as raised:
        session.describe()
    session.close()
    failure = session_failure(raised.value)
    assert failure.permanent and "401" in str(failure) and "wrong" not in str(failure)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    closed = RtspSession(f"rtsp://127.0.0.1:{port}/live", 5, 5)
    with pytest.raises(OSError) as refused:
        closed.connect()
    assert "connection refused" in str(session_failure(refused.value))
    assert not session_failure(refused.value).permanent


def test_control_urls_join_the_base() -> None:
    assert join_control("rtsp://h/live/", "trackID=1") == "rtsp://h/live/trackID=1"
    assert join_control("rtsp://h/live", "trackID=1") == "rtsp://h/live/trackID=1"
    assert join_control("rtsp://h/live", "rtsp://other/x") == "rtsp://other/x"
    assert join_control("rtsp://h/live", "*") == join_control("rtsp://h/live", None) == "rtsp://h/live"
