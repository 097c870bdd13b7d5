"""Network addresses: what counts as this machine only (loopback), for the listeners' safety rules."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
