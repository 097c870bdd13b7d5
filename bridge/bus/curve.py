"""ZeroMQ CURVE on the bus: encryption and client allow-listing for tcp:// endpoints.

The rule: a ``tcp://`` endpoint whose host is not loopback (127.0.0.0/8,
``::1``, ``localhost``) carries deals and commands across a network, so it
requires CURVE; the configuration is refused otherwise (:func:`require`).
``inproc://`` and ``ipc://`` never leave the host and need nothing.

When ``[bus]`` has CURVE keys, every ``tcp://`` bus socket uses them (loopback
ones too): the bound sides (the deal publisher's PUB and ROUTER, the control
ROUTER) are CURVE servers, the connecting sides (the worker's subscriber,
``bridge status`` and the other control clients) CURVE clients. Options are set
once, when the socket is created, before it binds or connects: nothing is done
per message.

A server accepts only the client public keys listed in ``curve_clients`` (and
this process's own, so ``bridge status`` on the daemon's own configuration
gets in). The check is ZeroMQ's ZAP protocol, answered by pyzmq's
:class:`zmq.auth.thread.ThreadAuthenticator` (a thread of its own, consulted
once per connection handshake, never per message) with an in-memory allow
list. It starts before any socket binds (:class:`CurveAuthService`, the first
service of the daemon's tree): a server socket bound with no ZAP handler would
let any key in. A client whose key is refused, or who expects another server
key, gets no connection and so no frame: ZeroMQ keeps retrying quietly.

Keys are Z85 text (40 characters), as ``bridge keys generate`` writes them.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from twisted.application import service
from zmq.utils import z85

from bridge.config.secrets import Secret, read_secret
from bridge.errors import InputError
from bridge.net import is_loopback

log = logging.getLogger("bridge.bus")

KEY_LENGTH = 40  # Z85 of 32 bytes
_Z85 = set(z85.Z85CHARS.decode("ascii"))
FIX = "run `bridge keys generate --out DIR` and set [bus] curve_secret_file (see README, Security)"


@dataclass(frozen=True)
class CurveKeys:
    """This process's key pair and whom it trusts. ``secret`` is never logged (a :class:`Secret`)."""

    secret: Secret  # Z85; the public key is derived from it
    public: str
    server_public: str  # the key of the server a connecting socket expects (the deal publisher's)
    clients: tuple[str, ...]  # the client keys a bound socket lets in (this process's own included)


def available() -> bool:
    return bool(zmq.has("curve"))


def needs_curve(endpoint: str) -> bool:
    """A ``tcp://`` endpoint on a host other than loopback (``*``, ``0.0.0.0``, an interface, an address)."""
    if not endpoint.startswith("tcp://"):
        return False
    address = endpoint[len("tcp://"):].rsplit(";", 1)[-1]  # a connect may name a source: "src;host:port"
    host = address.rpartition(":")[0].strip("[]")
    return not is_loopback(host)


def require(table, endpoints: dict[str, str | None], keys: CurveKeys | None, fix: str = FIX) -> None:
    """The rule: every non-loopback tcp:// endpoint of ``table`` (a strict Table) needs CURVE keys; one line
    naming the first that has none, and ``fix``."""
    if keys is not None:
        return
    for key, endpoint in endpoints.items():
        if endpoint is not None and needs_curve(endpoint):
            raise InputError(f"{table.at(key)}: {key} {endpoint!r} is not a loopback address, so it needs CURVE: {fix}")


def check_key(text: object, what: str) -> str:
    """A Z85 CURVE key (40 characters that decode to 32 bytes), or one line saying what is wrong."""
    if not isinstance(text, str) or len(text) != KEY_LENGTH:
        raise InputError(f"{what} must be a {KEY_LENGTH}-character Z85 CURVE key (from `bridge keys generate`)")
    try:
        decoded = z85.decode(text.encode("ascii")) if set(text) <= _Z85 else b""
    except (ValueError, UnicodeEncodeError, KeyError, IndexError, struct.error):
        decoded = b""
    if len(decoded) != 32:
        raise InputError(f"{what} is not a valid Z85 CURVE key (from `bridge keys generate`)")
    return text


def parse(bus, base: Path) -> CurveKeys | None:
    """``[bus]`` CURVE keys: ``curve_secret_file``/``curve_secret_env`` (absent: no CURVE, and no other
    ``curve_*`` key), ``curve_server_public`` (absent: this process's own public key, when both sides
    share one key pair), ``curve_clients`` (a list of public keys)."""
    own = read_own_key(bus, base, ("curve_server_public", "curve_clients"))
    if own is None:
        return None
    secret, public = own
    server = read_server_key(bus, own, public)
    raw = bus.raw("curve_clients", [])
    if not isinstance(raw, list):
        raise InputError(f"{bus.at('curve_clients')}: curve_clients must be a list of public keys, e.g. [\"...\"]")
    clients = [check_key(k, f"{bus.at('curve_clients')}: curve_clients[{i}]") for i, k in enumerate(raw)]
    if secret.reveal() in clients:
        raise InputError(f"{bus.at('curve_clients')}: a secret key is listed as a public one: list the .pub files' keys")
    return CurveKeys(secret, public, server, tuple(dict.fromkeys([public, *clients])))


def read_own_key(table, base: Path, needing: tuple[str, ...], fix: str = FIX) -> tuple[Secret, str] | None:
    """This process's CURVE key from ``curve_secret_file``/``curve_secret_env`` of ``table`` (a strict Table):
    (secret, public), or None when neither is set; then none of the keys ``needing`` may be set either."""
    if not any(f"curve_secret{suffix}" in table for suffix in ("", "_file", "_env")):
        for key in needing:
            if key in table:
                raise InputError(f"{table.at(key)}: {key} needs this process's own key: set curve_secret_file "
                                 f"(or curve_secret_env); {fix}")
        return None
    if not available():
        raise InputError(f"{table.where}: this libzmq has no CURVE support (zmq.has('curve') is false): install a "
                         "pyzmq/libzmq built with libsodium")
    secret = read_secret(table, "curve_secret", base)
    return own_key(secret, f"{table.at('curve_secret_file')}: curve_secret ({secret.source})")


def own_key(secret: Secret, what: str) -> tuple[Secret, str]:
    """A secret key read from a file or the environment, checked: (secret, its public key)."""
    check_key(secret.reveal(), what)
    return secret, zmq.curve_public(secret.reveal().encode("ascii")).decode("ascii")


def read_server_key(table, own: tuple[Secret, str] | None, default: str | None = None) -> str | None:
    """``curve_server_public`` of ``table`` (the key of the server a client connects to), else ``default``;
    refused when it is this process's own secret key."""
    if "curve_server_public" not in table:
        return default
    server = check_key(table.raw("curve_server_public"), f"{table.at('curve_server_public')}: curve_server_public")
    if own is not None and server == own[0].reveal():
        raise InputError(f"{table.at('curve_server_public')}: a secret key is listed as a public one: give the "
                         "server's public key (its .pub file)")
    return server


def read_public_keys(path: Path, what: str) -> tuple[str, ...]:
    """A file of client public keys, one a line (a ``.pub`` of ``bridge keys generate`` is such a file): the
    format of the MT4 EA's ``CurveClientsFile``. A line's key is its first word; a line whose first word
    starts with ``#`` is a comment, as is a ``#`` word after the key. (``#`` is a Z85 character, so a key may
    hold one, but never first: a Z85 group's first digit is at most 82 and ``#`` is 84. A ``#`` inside a word
    never starts a comment.) At least one key."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} {path}: cannot read it ({getattr(exc, 'strerror', None) or type(exc).__name__})") \
            from None
    found = []
    for n, line in enumerate(lines, 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue  # blank, or a comment line
        if len(words) > 1 and not words[1].startswith("#"):
            raise InputError(f"{what} {path}:{n}: one key a line (a comment after it starts with '# ')")
        found.append(check_key(words[0], f"{what} {path}:{n}"))
    if not found:
        raise InputError(f"{what} {path}: no public key in it (one Z85 key a line, from `bridge keys generate`)")
    return tuple(found)


def serve(socket: zmq.Socket, endpoint: str, keys: CurveKeys | None) -> None:
    """Make ``socket`` a CURVE server before it binds ``endpoint`` (tcp:// with keys only)."""
    if keys is None or not endpoint.startswith("tcp://"):
        return
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    socket.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.reveal().encode("ascii"))
    socket.setsockopt(zmq.ZAP_DOMAIN, b"copybridge")


def connect_as_client(socket: zmq.Socket, endpoint: str, keys: CurveKeys | None, *, local: bool = False) -> None:
    """Make ``socket`` a CURVE client before it connects to ``endpoint``: of ``keys.server_public`` (the deal
    publisher), or with ``local`` of this process's own key (the control socket of a daemon on this
    configuration)."""
    if keys is None or not endpoint.startswith("tcp://"):
        return
    server = keys.public if local else keys.server_public
    socket.setsockopt(zmq.CURVE_SERVERKEY, server.encode("ascii"))
    socket.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode("ascii"))
    socket.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.reveal().encode("ascii"))


class _AllowList:
    """The ZAP credentials provider: a client key is let in when it is listed.

    A refused client reconnects every 100 ms or so: its key is logged at its first refusal, then at most
    once a minute with the count since."""

    QUIET_S = 60.0

    def __init__(self, clients: tuple[str, ...], listed_in: str = "[bus] curve_clients") -> None:
        self.clients = frozenset(k.encode("ascii") for k in clients)
        self.listed_in = listed_in
        self.refused = 0
        self._said: dict[bytes, tuple[float, int]] = {}  # key -> (when last logged, refusals since)

    def callback(self, domain: str, client_key: bytes) -> bool:
        if client_key in self.clients:
            return True
        self.refused += 1
        now = time.monotonic()
        said, since = self._said.get(client_key, (None, 0))
        if said is None or now - said >= self.QUIET_S:
            self._said[client_key] = (now, 0)
            log.warning("bus: CURVE client key %s refused (not in %s)%s", client_key.decode("ascii"), self.listed_in,
                        f"; {since + 1} attempt(s) since the last line" if said is not None else "")
        else:
            self._said[client_key] = (said, since + 1)
        return False


def start_authenticator(ctx: zmq.Context, keys: CurveKeys, listed_in: str = "[bus] curve_clients"):
    """The ZAP handler of ``ctx`` (one per context), allowing ``keys.clients`` (``listed_in`` names where they
    are configured, for the refusal's log line); ``.stop()`` it when done."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx, log=logging.getLogger("bridge.bus.zap"))
    auth.allow_list = _AllowList(keys.clients, listed_in)
    auth.configure_curve_callback(domain="copybridge", credentials_provider=auth.allow_list)
    auth.start()  # binds the context's ZAP endpoint: from now on every CURVE handshake is checked
    return auth


class CurveAuthService(service.Service):
    """The daemon's ZAP handler, started first (before any socket binds) and stopped last."""

    name = "curve-auth"

    def __init__(self, ctx: zmq.Context, keys: CurveKeys) -> None:
        self.ctx, self.keys = ctx, keys
        self.auth = None

    def startService(self) -> None:
        self.auth = start_authenticator(self.ctx, self.keys)
        super().startService()
        log.info("bus: CURVE on every tcp:// bus socket; this process's public key %s, %d client key(s) allowed",
                 self.keys.public, len(self.keys.clients))

    def stopService(self):
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
        return super().stopService()
