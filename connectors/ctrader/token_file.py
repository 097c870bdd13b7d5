"""Refreshed access tokens, kept across restarts.

A ``RefreshTokenReq`` revokes the old access *and* refresh token, so after the
connector has refreshed once, the tokens in the configuration are dead: a
restart with them would fail to authorise. The connector therefore writes
every refreshed pair to a JSON file beside the store (mode 0600, written to a
temporary file and renamed, so a crash leaves the old or the new file whole)::

    {"40123456": {"configured": "<sha256 of the configured access token>",
                  "access": "...", "refresh": "...", "expires_at_ms": 1767225600000}}

At start, an account whose configured access token still has the fingerprint
recorded uses the refreshed pair; one whose configured token changed (an
operator issued new tokens) uses the configuration, and the stale entry is
overwritten at the next refresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("ctrader: token file %s is unreadable (%s); using the configured tokens", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def current(self, ctid: int, configured_access: str) -> dict | None:
        """The refreshed pair for ``ctid`` if it descends from the configured token, else None."""
        entry = self.load().get(str(ctid))
        if isinstance(entry, dict) and entry.get("configured") == fingerprint(configured_access) \
                and entry.get("access") and entry.get("refresh"):
            return entry
        return None

    def save(self, pairs: dict[int, tuple[str, str, str, int | None]]) -> None:
        """``ctid -> (configured access token, access, refresh, expires_at_ms)``, merged into the file."""
        data = self.load()
        for ctid, (configured, access, refresh, expires_at_ms) in pairs.items():
            data[str(ctid)] = {"configured": fingerprint(configured), "access": access, "refresh": refresh,
                               "expires_at_ms": expires_at_ms}
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
