"""Keep ICE on the addresses we are told to use.

aioice never offers 127.0.0.1 and otherwise offers every interface; for local use (one laptop, the tests) the
gateway restricts its own candidates to the configured addresses and drops remote candidates elsewhere, so no
ICE packet leaves them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


def restrict_host_addresses(addresses: Sequence[str] | None) -> None:
    """Make aioice gather only ``addresses`` (None: aioice's own choice)."""
    if addresses is None:
        return
    import aioice.ice

    allowed = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            a
            for a in allowed
            if (ipaddress.ip_address(a).version == 4 and use_ipv4)
            or (ipaddress.ip_address(a).version == 6 and use_ipv6)
        ]

    aioice.ice.get_host_addresses = host_addresses


def keep_candidates(sdp: str, addresses: Sequence[str] | None) -> str:
    """Drop ``a=candidate`` lines whose address is not allowed (and mDNS ``.local`` names, which need multicast)."""
    if addresses is None:
        return sdp
    allowed = set(addresses)
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 5 or parts[4] not in allowed:
                continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"
