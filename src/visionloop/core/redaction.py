"""Camera credentials never leave the process: every URL-bearing text goes through :func:`redact`."""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")


def redact(text: str) -> str:
    """Replace ``user:password@`` in any URL inside ``text`` with ``***@``."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)
