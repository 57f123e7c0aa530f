"""A small RTSP client (RFC 2326) for one video track over TCP: DESCRIBE, SETUP, PLAY, keep-alive and TEARDOWN.

It carries media interleaved on the RTSP connection (the transport the service uses by default: one socket, no
firewall holes) and answers Basic and Digest authentication challenges. Every read has a timeout, so a hung camera
ends the session instead of blocking it; credentials are taken out of the request URLs and never logged.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import socket
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlparse, urlunparse

from visionloop.core.errors import VisionloopError
from visionloop.core.redaction import redact

DEFAULT_PORT = 554
USER_AGENT = "visionloop"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_SESSION_TIMEOUT_S = 60.0


class RtspError(VisionloopError):
    """The camera answered with an error status, or broke the protocol."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.status = status


@dataclass(frozen=True)
class RtspResponse:
    status: int
    reason: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class Interleaved:
    """A media or control packet carried on the RTSP connection."""

    channel: int
    data: bytes


class _Challenge:
    """Answers a 401's WWW-Authenticate: Digest (MD5, with or without qop=auth) when offered, else Basic."""

    def __init__(self, header_values: list[str], user: str, password: str) -> None:
        self.user, self.password = user, password
        digest = next((v for v in header_values if v.lower().startswith("digest")), None)
        self.params = _auth_params(digest[len("digest") :]) if digest else {}
        self.scheme = "digest" if digest else "basic"
        self._count = 0

    def header(self, method: str, uri: str) -> str:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return f"Basic {token}"
        realm, nonce = self.params.get("realm", ""), self.params.get("nonce", "")
        ha1 = _md5(f"{self.user}:{realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [f'username="{self.user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        if "auth" in self.params.get("qop", "").split(","):
            self._count += 1
            count, cnonce = f"{self._count:08x}", os.urandom(8).hex()
            response = _md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in self.params:
            fields.append(f'opaque="{self.params["opaque"]}"')
        return "Digest " + ", ".join(fields)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        if name:
            params[name.strip().lower()] = value.strip().strip('"')
    return params


def join_control(base: str, control: str | None) -> str:
    """The URL a track's (or the session's) ``a=control`` names, against the description's base URL."""
    if not control or control == "*":
        return base
    if "://" in control:
        return control
    return base + control if base.endswith("/") else f"{base}/{control}"


class RtspSession:
    """One connection to a camera. Use :meth:`open` (DESCRIBE, SETUP, PLAY), then :meth:`read` in a loop."""

    def __init__(self, url: str, open_timeout_s: float, read_timeout_s: float) -> None:
        parsed = urlparse(url)
        if not parsed.hostname:
            raise RtspError(f"no host in the camera URL {redact(url)}")
        self.host, self.port = parsed.hostname, parsed.port or DEFAULT_PORT
        self.user = unquote(parsed.username) if parsed.username is not None else None
        self.password = unquote(parsed.password or "")
        netloc = parsed.hostname if ":" not in parsed.hostname else f"[{parsed.hostname}]"
        netloc += f":{parsed.port}" if parsed.port else ""
        self.url = urlunparse(parsed._replace(netloc=netloc))  # the URL without credentials, as sent
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        self._socket: socket.socket | None = None
        self._reader: io.BufferedReader | None = None
        self._sequence = 0
        self._session: str | None = None
        self._session_timeout_s = DEFAULT_SESSION_TIMEOUT_S
        self._challenge: _Challenge | None = None
        self._keepalive_at = 0.0
        self._play_url = self.url

    # -- set-up ------------------------------------------------------------------------------------------------

    def connect(self) -> None:
        self._socket = socket.create_connection((self.host, self.port), timeout=self.open_timeout_s)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = cast(io.BufferedReader, self._socket.makefile("rb", buffering=256 * 1024))

    def describe(self) -> tuple[str, str]:
        """The SDP and the base URL its relative control URLs are joined to."""
        response = self.request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        base = response.headers.get("content-base") or response.headers.get("content-location") or self.url
        return response.body.decode("utf-8", errors="replace"), base

    def setup(self, track_url: str, session_control: str | None, base: str) -> None:
        response = self.request("SETUP", track_url, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        session = response.headers.get("session")
        if not session:
            raise RtspError("the camera answered SETUP without a session")
        self._session, _, options = session.partition(";")
        self._session = self._session.strip()
        for option in options.split(";"):
            name, _, value = option.strip().partition("=")
            if name.lower() == "timeout" and value.strip().isdigit() and int(value) > 0:
                self._session_timeout_s = float(value)
        self._play_url = join_control(base, session_control)

    def play(self) -> None:
        self.request("PLAY", self._play_url, {"Range": "npt=0.000-"})
        if self._socket is not None:
            self._socket.settimeout(self.read_timeout_s)
        self._keepalive_at = time.monotonic() + self._session_timeout_s / 2

    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> RtspResponse:
        """Send a request and wait for its answer, answering one authentication challenge on the way."""
        response = self._exchange(method, url, headers or {})
        if response.status == 401 and self.user is not None and self._challenge is None:
            offered = response.headers.get("www-authenticate", "").split("\n")
            self._challenge = _Challenge(offered, self.user, self.password)
            response = self._exchange(method, url, headers or {})
        if response.status >= 300:
            raise RtspError(f"{method} answered {response.status} {response.reason}", response.status)
        return response

    def _encode(self, method: str, url: str, headers: dict[str, str] | None = None) -> bytes:
        """The next request on the wire: its CSeq, the session and the answer to the camera's challenge."""
        self._sequence += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._sequence}", f"User-Agent: {USER_AGENT}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if self._session:
            lines.append(f"Session: {self._session}")
        if self._challenge is not None:
            lines.append(f"Authorization: {self._challenge.header(method, url)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _exchange(self, method: str, url: str, headers: dict[str, str]) -> RtspResponse:
        self._send(self._encode(method, url, headers))
        while True:
            message = self._message()
            if isinstance(message, RtspResponse) and message.headers.get("cseq", "").strip() == str(self._sequence):
                return message

    # -- streaming ---------------------------------------------------------------------------------------------

    def read(self) -> Interleaved | None:
        """The next interleaved packet (None when the camera closed the connection); keeps the session alive."""
        now = time.monotonic()
        if self._session and now >= self._keepalive_at:
            self._keepalive_at = now + self._session_timeout_s / 2
            self._send_keepalive()
        while True:
            message = self._message()
            if message is None or isinstance(message, Interleaved):
                return message
            # an answer to a keep-alive: nothing to do (a refusal shows up as the session ending)

    def _send_keepalive(self) -> None:
        self._send(self._encode("OPTIONS", self.url))  # its answer is passed over by read()

    # -- the wire ----------------------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._socket is None:
            raise RtspError("the RTSP session is not connected")
        self._socket.sendall(data)

    def _read_exactly(self, size: int) -> bytes | None:
        data = self._lines().read(size)
        if len(data) < size:
            return None
        return bytes(data)

    def _lines(self) -> io.BufferedReader:
        if self._reader is None:
            raise RtspError("the RTSP session is not connected")
        return self._reader

    def _message(self) -> RtspResponse | Interleaved | None:
        """The next thing on the connection: an interleaved packet, a response, or None at its end."""
        first = self._read_exactly(1)
        if first is None:
            return None
        if first == b"$":
            header = self._read_exactly(3)
            if header is None:
                return None
            data = self._read_exactly(int.from_bytes(header[1:3], "big"))
            return None if data is None else Interleaved(header[0], data)
        return self._response(first)

    def _response(self, first: bytes) -> RtspResponse | None:
        status_line = first + self._lines().readline(MAX_HEADER_BYTES)
        if not status_line.endswith(b"\n"):
            return None
        version, _, rest = status_line.decode("latin-1").strip().partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("RTSP/") or not code.isdigit():
            raise RtspError(f"not an RTSP answer: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        total = len(status_line)
        while True:
            line = self._lines().readline(MAX_HEADER_BYTES)
            total += len(line)
            if not line.endswith(b"\n") or total > MAX_HEADER_BYTES:
                raise RtspError("the camera's answer headers are cut off or too long")
            text = line.decode("latin-1").strip()
            if not text:
                break
            name, _, value = text.partition(":")
            name = name.strip().lower()
            headers[name] = f"{headers[name]}\n{value.strip()}" if name in headers else value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY_BYTES:
            raise RtspError(f"the camera's answer body is {length} bytes (at most {MAX_BODY_BYTES})")
        body = self._read_exactly(length) if length else b""
        if body is None:
            return None
        return RtspResponse(int(code), reason, headers, body)

    def close(self) -> None:
        """TEARDOWN (best effort, without waiting for its answer) and close the connection."""
        sock, reader = self._socket, self._reader
        if sock is None:
            return
        try:
            if self._session:
                sock.settimeout(0.2)
                sock.sendall(self._encode("TEARDOWN", self._play_url))
        except OSError:
            pass  # the camera is gone already
        finally:
            self._socket, self._reader = None, None
            if reader is not None:
                with contextlib.suppress(OSError):
                    reader.close()
            sock.close()
