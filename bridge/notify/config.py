"""The ``[notify]`` table of ``bridge.toml`` and its ``[notify.email]`` channel::

    [notify]
    outage_after_s = 30                     # a venue connection down this long is an outage (default 30)

    [notify.email]
    host = "smtp.example.com"
    port = 587                              # default: 587 with starttls, 465 with tls, else 25
    starttls = true                         # or tls = true (implicit TLS); neither: plain SMTP (a local relay)
    ca_file = "/etc/copybridge/smtp-ca.pem" # optional: trust only this CA (default: the system's CAs)
    username = "copybridge@example.com"     # optional; needs starttls or tls (never sent in clear)
    password_file = "/etc/copybridge/smtp-password"   # or password_env = "VARIABLE"
    from = "copybridge@example.com"
    to = ["dealing@example.com", "ops@example.com"]
    events = ["stop-out", "pool-stop", "rollover", "drift", "venue-down", "venue-up"]  # default: all
    min_interval_s = 300                    # at most one mail per event kind this often; the rest
                                            # follow in one digest (0: no limit; default 60)
    retries = 3                             # a failed send is tried again, 5 s, 10 s, 20 s later
    timeout_s = 30                          # a server that says nothing this long has failed
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from bridge.config.secrets import Secret, read_secret
from bridge.config.strict import Table
from bridge.errors import InputError
from bridge.notify.events import KINDS
from bridge.notify.outage import OUTAGE_AFTER_S


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    starttls: bool = False
    tls: bool = False
    ca_pem: bytes | None = None
    username: str | None = None
    password: Secret | None = None
    events: frozenset[str] = frozenset(KINDS)
    min_interval_s: float = 60.0
    retries: int = 3
    timeout_s: float = 30.0


@dataclass(frozen=True)
class NotifySettings:
    outage_after_s: float = OUTAGE_AFTER_S
    email: EmailSettings | None = None


def parse_notify(t: Table | None, base: Path) -> NotifySettings | None:
    """``[notify]``; None when the table is absent (no notifications)."""
    if t is None:
        return None
    outage = _seconds(t, "outage_after_s", OUTAGE_AFTER_S)
    email = t.table("email")
    settings = NotifySettings(outage, _email(email, base) if email is not None else None)
    t.finish()
    return settings


def _email(t: Table, base: Path) -> EmailSettings:
    host = t.str("host")
    starttls, tls = t.bool("starttls", False), t.bool("tls", False)
    if starttls and tls:
        raise InputError(f"{t.where}: set starttls or tls, not both (tls is TLS from the first byte, port 465)")
    port = t.raw("port", 587 if starttls else 465 if tls else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InputError(f"{t.where}: port must be an integer in 1..65535")
    ca_pem = None
    if "ca_file" in t:
        if not (starttls or tls):
            raise InputError(f"{t.where}: ca_file needs starttls = true or tls = true")
        path = Path(t.str("ca_file"))
        path = path if path.is_absolute() else base / path
        try:
            ca_pem = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{t.where}: cannot read ca_file {path}: {exc.strerror or exc}") from None
    username = t.str("username", None)
    password = None
    if username is not None:
        if not (starttls or tls):
            raise InputError(f"{t.where}: username needs starttls = true or tls = true "
                             "(the password is never sent in clear)")
        password = read_secret(t, "password", base)
    elif any(k in t for k in ("password", "password_file", "password_env")):
        raise InputError(f"{t.where}: a password without a username: set username too")
    sender = _address(t, "from", t.str("from"))
    to = t.raw("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(a, str) for a in to):
        raise InputError(f"{t.where}: to must be a list of addresses, e.g. to = [\"ops@example.com\"]")
    to = tuple(_address(t, "to", a) for a in to)
    events = t.raw("events", list(KINDS))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InputError(f"{t.where}: events must be a list of event kinds ({', '.join(KINDS)})")
    unknown = [e for e in events if e not in KINDS]
    if unknown:
        raise InputError(f"{t.where}: events: {unknown[0]!r} is not one of {', '.join(KINDS)}")
    min_interval = _seconds(t, "min_interval_s", 60.0, allow_zero=True)
    retries = t.raw("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise InputError(f"{t.where}: retries must be an integer in 0..10")
    timeout = _seconds(t, "timeout_s", 30.0)
    t.finish()
    return EmailSettings(host, port, sender, to, starttls, tls, ca_pem, username, password, frozenset(events),
                         min_interval, retries, timeout)


def _address(t: Table, key: str, value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c in value for c in " <>\r\n,") or not value.isascii():
        raise InputError(f"{t.where}: {key} {value!r} is not an e-mail address (name@example.com)")
    return value


def _seconds(t: Table, key: str, default: float, allow_zero: bool = False) -> float:
    value = t.raw(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or value < 0 \
            or (value == 0 and not allow_zero):
        raise InputError(f"{t.where}: {key} must be a {'non-negative' if allow_zero else 'positive'} number "
                         "of seconds")
    return float(value)
