"""Operator notifications by e-mail, against a real SMTP server (aiosmtpd) on 127.0.0.1.

Events come from the real code paths: a PoolService rollover that halts a pool,
the worker's reconcile at recovery in the service tree over the real bus, a
simulated venue that is disconnected; the mails go over TCP (STARTTLS and AUTH
with a password from a file in one test) through ``twisted.mail.smtp`` on a
reactor the test iterates (the global one: Twisted's TLS layer schedules its
writes there), timed by a test clock where it matters.
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import random
import socket
import ssl
import time
import tomllib
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pytest
import zmq
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from twisted.internet import reactor
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from bridge.config.secrets import Secret
from bridge.config.strict import Table
from bridge.daemon import config as bridge_config
from bridge.daemon.pools import PoolService
from bridge.daemon.services import WorkerService, build
from bridge.domain.deal import Side
from bridge.errors import InputError
from bridge.notify.config import EmailSettings, NotifySettings, parse_notify
from bridge.notify.events import OperatorEvents, StopOut
from bridge.notify.mail import MailNotifier
from bridge.notify.outage import VenueWatch
from connectors.ctrader.server.certificates import local_identity
from connectors.sim import SimConfig, SimVenue
from tests.test_daemon import free_tcp_endpoint
from tests.test_pool_service import MASTER, T0, Rig, at

ROOT = Path(__file__).resolve().parents[1]
TO = ("ops@example.com", "desk@example.com")
SENDER = "copybridge@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    msg: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.msg["Subject"])

    @property
    def body(self) -> str:
        return self.msg.get_content()


class Inbox:
    """The aiosmtpd handler: every message accepted, kept for the test."""

    def __init__(self) -> None:
        self.messages: list[Received] = []

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def kinds(self) -> list[str]:
        return [str(m.msg["X-Copybridge-Event"]) for m in self.messages]


class SmtpServer:
    def __init__(self, port: int | None = None, **smtp) -> None:
        self.inbox = Inbox()
        self.port = port or free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **smtp)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.stop()


def pump(reactor, until, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached in time"
        reactor.iterate(0.005)


def settle(reactor, seconds: float = 0.3) -> None:
    """Iterate the reactor a while, for asserting that nothing arrives."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reactor.iterate(0.005)


def mail_settings(port: int, **changes) -> EmailSettings:
    return replace(EmailSettings("127.0.0.1", port, SENDER, TO, min_interval_s=0.0, timeout_s=5.0), **changes)


def fields(body: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)


# -- pool rollovers and the pool stop, from the PoolService ---------------------------------

def test_rollovers_and_the_pool_stop_are_mailed_from_the_pool_service(tmp_path, smtp):
    events = OperatorEvents()
    rig = Rig(tmp_path, handling="reallocate", stop_drawdown=Decimal("20"))
    notifier = MailNotifier(mail_settings(smtp.port), events, reactor, rig.clock, hostname="bridge-1")
    notifier.startService()
    rig.service = PoolService(rig.clock, {MASTER.server: rig.venue}, rig.path, events=events)
    try:
        rig.book.deposit("alpha", "M", Decimal("2000.00"), at(1))
        rig.book.deposit("alpha", "A", Decimal("8000.00"), at(2))
        rig.service.startService()
        rig.advance_to(3600)
        pump(reactor, lambda: len(smtp.inbox.messages) == 1)
        first = smtp.inbox.messages[0]
        assert first.subject == "[copybridge] pool alpha: rollover #1 at NAV 1.0000000000"
        assert first.mail_from == SENDER and first.rcpt_tos == TO
        assert first.msg["To"] == ", ".join(TO) and first.msg["From"] == SENDER
        assert fields(first.body) == {"Pool": "alpha", "Rollover": "#1 (schedule) at 2026-01-01 01:00:00 UTC",
                                      "NAV": "1.0000000000", "Equity": "10000.00", "Halted": "no", "Orders": "0",
                                      "Noticed": "2026-01-01 01:00:00 UTC"}
        assert first.body.rstrip().endswith("copybridge on bridge-1")

        rig.fund(1)
        rig.venue.trade(MASTER, "EURUSD", Side.BUY, "2.00")
        rig.venue.trade(MASTER, "USDJPY", Side.SELL, "1.00")
        rig.venue.market.set_bid("EURUSD", rig.venue.market.quote("EURUSD").bid - Decimal("0.0150"))
        rig.advance_to(7200)  # 30 % down: the pool halts and every position is closed
        pump(reactor, lambda: len(smtp.inbox.messages) == 3)
        assert rig.open_volumes() == []
        by_kind = {str(m.msg["X-Copybridge-Event"]): m for m in smtp.inbox.messages[1:]}
        assert set(by_kind) == {"rollover", "pool-stop"}
        stop = by_kind["pool-stop"]
        assert stop.subject.startswith("[copybridge] pool alpha stopped: drawdown of 20% from the highest NAV")
        f = fields(stop.body)
        assert f["Pool"] == "alpha" and f["Master account"] == str(MASTER)
        assert f["Reason"].startswith("drawdown of 20%") and f["Rollover"].startswith("#2 at 2026-01-01 02:00:00")
        assert f["Positions to close"] == "2" and "closed now and again" in f["What the bridge does"]
        assert fields(by_kind["rollover"].body)["Halted"].startswith("drawdown of 20%")

        # a later rollover of the halted pool closes the manager's new trade again: a rollover mail, no new stop
        rig.venue.trade(MASTER, "EURUSD", Side.BUY, "0.50")
        rig.advance_to(3 * 3600)
        pump(reactor, lambda: len(smtp.inbox.messages) == 4)
        settle(reactor)
        assert smtp.inbox.kinds() == ["rollover", "rollover", "pool-stop", "rollover"] or \
            smtp.inbox.kinds() == ["rollover", "pool-stop", "rollover", "rollover"]
    finally:
        rig.service.stopService()
        notifier.stopService()
        rig.store.close()


def test_only_the_listed_event_kinds_are_mailed(tmp_path, smtp):
    events = OperatorEvents()
    rig = Rig(tmp_path)
    notifier = MailNotifier(mail_settings(smtp.port, events=frozenset({"pool-stop"})), events, reactor, rig.clock)
    notifier.startService()
    rig.service = PoolService(rig.clock, {MASTER.server: rig.venue}, rig.path, events=events)
    try:
        rig.book.deposit("alpha", "M", Decimal("1000.00"), at(1))
        rig.service.startService()
        rig.advance_to(2 * 3600)
        assert rig.book.load("alpha").rollovers == 2 and events.emitted == 2
        settle(reactor)
        assert smtp.inbox.messages == []
    finally:
        rig.service.stopService()
        notifier.stopService()
        rig.store.close()


# -- drift and follower positions closed by the venue, from the worker's reconcile -----------

class Daemon:
    """The all-roles service tree over a real bus on 127.0.0.1, with [notify.email] to the test's server."""

    def __init__(self, tmp_path, smtp_port: int) -> None:
        self.reactor = SelectReactor()
        self.ctx = zmq.Context()
        config = bridge_config.load(ROOT / "config" / "demo.toml")
        notify = NotifySettings(30.0, mail_settings(smtp_port))
        self.config = replace(config, store_path=tmp_path / "bridge.sqlite", deals_endpoint=free_tcp_endpoint(),
                              deals_replay_endpoint=free_tcp_endpoint(), control_endpoint=free_tcp_endpoint(),
                              notify=notify)
        self.top = build(self.config, self.reactor, "all", self.ctx)
        self.venue = next(iter(self.top.venues.values()))
        self.master = self.venue.login(1000)
        self.top.startService()

    def until(self, condition, timeout: float = 10.0) -> None:
        pump(self.reactor, condition, timeout)

    def stop(self) -> None:
        self.top.stopService()
        self.ctx.destroy(0)


def test_drift_and_follower_positions_closed_by_the_venue_are_mailed_at_reconcile(tmp_path, smtp):
    d = Daemon(tmp_path, smtp.port)
    try:
        copy_a, copy_b = d.venue.login(2001), d.venue.login(2002)
        d.venue.trade(d.master, "EURUSD", Side.BUY, "1.00")
        d.until(lambda: d.venue.positions(copy_a).result and d.venue.positions(copy_b).result)
        d.until(lambda: d.top.getServiceNamed("worker").worker.idle)
        (gone,) = d.venue.positions(copy_a).result
        d.venue.close(copy_a, gone.position_id)  # closed at the venue, not by the bridge
        (cut,) = d.venue.positions(copy_b).result
        d.venue.close(copy_b, cut.position_id, "0.01")  # and partly closed by hand: the link's volume is wrong
        settle(d.reactor, 0.1)
        assert smtp.inbox.messages == []  # the bridge learns of it at its next reconcile

        old = d.top.getServiceNamed("worker")
        old.disownServiceParent()
        fresh = WorkerService(d.ctx, d.reactor, d.top.venues, d.config, events=d.top.events)
        fresh.setServiceParent(d.top)  # a worker restart: recovery reconciles every follower
        d.until(lambda: len(smtp.inbox.messages) == 2)
        settle(d.reactor)
        by_kind = {str(m.msg["X-Copybridge-Event"]): m for m in smtp.inbox.messages}
        assert set(by_kind) == {"stop-out", "drift"}

        stop = by_kind["stop-out"]
        assert stop.subject == f"[copybridge] {copy_a}: 1 follower position(s) closed by the venue"
        f = fields(stop.body)
        assert f["Follower"] == str(copy_a) and f["Master positions"].startswith("#")
        assert "stop-out" in f["Cause"] and "close by hand" in f["Cause"]
        assert stop.rcpt_tos == TO

        drift = by_kind["drift"]
        assert drift.subject == f"[copybridge] drift on {copy_b}: 1 volume mismatch(es)"
        f = fields(drift.body)
        assert f["Follower"] == str(copy_b) and f["Drift policy"] == "report"
        link, held = cut.volume, cut.volume - d.venue.positions(copy_b).result[0].volume
        assert "the link says" in f["Volume mismatch"] and f"the venue holds {link - held}" in f["Volume mismatch"]
    finally:
        d.stop()


# -- venue outages ---------------------------------------------------------------------------

def test_an_outage_is_mailed_after_outage_after_s_and_its_end_with_its_duration(smtp):
    clock = Clock()
    clock.advance(T0)
    events = OperatorEvents()
    venue = SimVenue("sim-demo", clock, random.Random(1), SimConfig())
    watch = VenueWatch({venue.server: venue}, events, clock, outage_after_s=30)
    notifier = MailNotifier(mail_settings(smtp.port), events, reactor, clock)
    notifier.startService()
    watch.startService()
    try:
        venue.disconnected = True  # a reconnect: back within 30 s, nothing is sent
        for _ in range(20):
            clock.advance(1)
        venue.disconnected = False
        clock.advance(1)
        settle(reactor)
        assert smtp.inbox.messages == [] and events.emitted == 0

        venue.disconnected = True
        clock.advance(1)  # the watch looks once a second: down from now
        down_at = clock.seconds()
        for _ in range(29):
            clock.advance(1)
        settle(reactor, 0.1)
        assert smtp.inbox.messages == []
        clock.advance(1)  # 30 s down: an outage
        pump(reactor, lambda: len(smtp.inbox.messages) == 1)
        down = smtp.inbox.messages[0]
        assert down.subject == "[copybridge] venue sim-demo down: venue for 30 s"
        assert fields(down.body)["Down since"] == time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(down_at))
        assert fields(down.body)["Last error"] == "disconnected"
        for _ in range(95):
            clock.advance(1)
        venue.disconnected = False
        clock.advance(1)
        pump(reactor, lambda: len(smtp.inbox.messages) == 2)
        up = smtp.inbox.messages[1]
        assert clock.seconds() - down_at == 126
        assert up.subject == "[copybridge] venue sim-demo up again: venue was down 2 min 6 s"
        assert fields(up.body)["Outage"] == "2 min 6 s" and up.msg["X-Copybridge-Event"] == "venue-up"
        settle(reactor)
        assert len(smtp.inbox.messages) == 2
    finally:
        watch.stopService()
        notifier.stopService()


# -- an SMTP server that is down; the rate limit ----------------------------------------------

def test_an_smtp_server_that_is_down_costs_the_order_path_nothing_and_is_logged_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bridge")
    events = OperatorEvents()
    rig = Rig(tmp_path, handling="reallocate", stop_drawdown=Decimal("20"))
    port = free_port()  # nothing listens there
    notifier = MailNotifier(mail_settings(port, retries=2), events, reactor, rig.clock)
    notifier.startService()
    rig.service = PoolService(rig.clock, {MASTER.server: rig.venue}, rig.path, events=events)
    try:
        rig.book.deposit("alpha", "M", Decimal("2000.00"), at(1))
        rig.book.deposit("alpha", "A", Decimal("8000.00"), at(2))
        rig.service.startService()
        rig.advance_to(3600)
        rig.fund(1)
        rig.venue.trade(MASTER, "EURUSD", Side.BUY, "2.00")
        rig.venue.market.set_bid("EURUSD", rig.venue.market.quote("EURUSD").bid - Decimal("0.0150"))
        started = time.monotonic()
        rig.advance_to(7200)
        assert time.monotonic() - started < 1.0  # the rollover did not wait on the mail
        assert rig.book.load("alpha").halted and rig.open_volumes() == []  # the pool stop went through
        for _ in range(40):  # each attempt fails (connection refused); retried 5 s, then 10 s later
            settle(reactor, 0.02)
            rig.clock.advance(1)
        pump(reactor, lambda: notifier.dropped == 3)
        warnings = [r for r in caplog.records if r.name == "bridge.notify" and r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        line = warnings[0].getMessage()
        assert f"cannot send mail via 127.0.0.1:{port}" in line and "ConnectionRefusedError" in line
        assert "after 3 attempt(s)" in line and "\n" not in line

        # the server comes up: the next event is mailed, and that is said once too
        server = SmtpServer(port)
        try:
            events.emit(StopOut("sim/sim-demo/2001", ("#7",)))
            pump(reactor, lambda: len(server.inbox.messages) == 1)
            assert notifier.sent == 1 and not notifier.failing
            assert any("takes mail again (3 notification(s) were dropped" in r.getMessage() for r in caplog.records)
        finally:
            server.stop()
    finally:
        rig.service.stopService()
        notifier.stopService()
        rig.store.close()


def test_an_smtp_server_that_accepts_and_never_answers_times_out_and_is_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="bridge")
    with socket.socket() as mute:  # the kernel completes the connection; nobody ever says 220
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        events = OperatorEvents()
        notifier = MailNotifier(mail_settings(mute.getsockname()[1], retries=0, timeout_s=0.3), events, reactor,
                                Clock())
        notifier.startService()
        try:
            started = time.monotonic()
            events.emit(StopOut("sim/sim-demo/2001", ("#1",)))
            events.emit(replace_kind_drift())
            assert time.monotonic() - started < 0.1  # emitting does not wait on the server
            pump(reactor, lambda: notifier.dropped == 2)
        finally:
            notifier.stopService()
    warnings = [r.getMessage() for r in caplog.records if r.name == "bridge.notify" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "Timeout" in warnings[0], warnings


def test_the_rate_limit_holds_events_of_a_kind_and_sends_them_in_one_digest(smtp):
    clock = Clock()
    clock.advance(T0)
    events = OperatorEvents()
    notifier = MailNotifier(mail_settings(smtp.port, min_interval_s=60.0), events, reactor, clock)
    notifier.startService()
    try:
        for i in range(4):
            events.emit(StopOut(f"sim/sim-demo/200{i}", (f"#{100 + i}",)))
            clock.advance(10)
        events.emit(replace_kind_drift())  # another kind has its own limit: sent at once
        pump(reactor, lambda: len(smtp.inbox.messages) == 2)
        assert sorted(smtp.inbox.kinds()) == ["drift", "stop-out"]  # two connections: either may land first
        (first,) = [m for m in smtp.inbox.messages if m.msg["X-Copybridge-Event"] == "stop-out"]
        assert "sim/sim-demo/2000" in first.subject
        settle(reactor)
        assert len(smtp.inbox.messages) == 2 and notifier.suppressed == 3
        clock.advance(20)  # 60 s after the first stop-out mail: the digest
        pump(reactor, lambda: len(smtp.inbox.messages) == 3)
        digest = smtp.inbox.messages[2]
        assert digest.subject == "[copybridge] digest: 3 more stop-out event(s) held by the rate limit"
        assert digest.msg["X-Copybridge-Event"] == "stop-out"
        for i in (1, 2, 3):
            assert f"{i}. sim/sim-demo/200{i}: 1 follower position(s) closed by the venue" in digest.body
            assert f"Master positions: #{100 + i}" in digest.body
        assert "min_interval_s = 60 s" in digest.body
        # after the digest, the next one waits for the interval again
        events.emit(StopOut("sim/sim-demo/2009", ("#9",)))
        settle(reactor)
        assert len(smtp.inbox.messages) == 3
        clock.advance(60)
        pump(reactor, lambda: len(smtp.inbox.messages) == 4)
        assert "1 more stop-out" in smtp.inbox.messages[3].subject
    finally:
        notifier.stopService()


def replace_kind_drift():
    from bridge.notify.events import DriftFound

    return DriftFound("sim/sim-demo/2001", "report", (("#5", 100, 90),))


# -- STARTTLS and AUTH with a password from a file --------------------------------------------

PASSWORD = "Corr3ct-horse-batt3ry"


def notify_table(text: str, tmp_path) -> NotifySettings:
    return parse_notify(Table(tomllib.loads(text, parse_float=Decimal)["notify"], "bridge.toml [notify]"), tmp_path)


@pytest.fixture
def tls_smtp(tmp_path):
    identity = local_identity()
    (tmp_path / "smtp.pem").write_bytes(identity.cert_pem)
    (tmp_path / "smtp.key").write_bytes(identity.key_pem)
    (tmp_path / "ca.pem").write_bytes(identity.ca_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "smtp.pem", tmp_path / "smtp.key")
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"bridge" and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

    server = SmtpServer(tls_context=context, require_starttls=True, auth_required=True, auth_require_tls=True,
                        authenticator=authenticator)
    server.logins = logins
    yield server
    server.stop()


def test_starttls_and_auth_with_a_password_from_a_file_which_is_never_logged(tmp_path, tls_smtp, caplog):
    caplog.set_level(logging.DEBUG)
    twisted_lines: list[str] = []
    observer = lambda event: twisted_lines.append(formatEvent(event) or "")  # noqa: E731
    globalLogPublisher.addObserver(observer)
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    settings = notify_table(f"""
        [notify]
        outage_after_s = 45
        [notify.email]
        host = "127.0.0.1"
        port = {tls_smtp.port}
        starttls = true
        ca_file = "ca.pem"
        username = "bridge"
        password_file = "smtp-password"
        from = "{SENDER}"
        to = ["{TO[0]}"]
        min_interval_s = 0
        retries = 0
    """, tmp_path)
    assert settings.outage_after_s == 45.0
    assert PASSWORD not in repr(settings)
    clock = Clock()
    events = OperatorEvents()
    notifier = MailNotifier(settings.email, events, reactor, clock)
    notifier.startService()
    try:
        events.emit(StopOut("sim/sim-demo/2001", ("#1",)))
        pump(reactor, lambda: len(tls_smtp.inbox.messages) == 1)
        assert tls_smtp.logins == [(b"bridge", PASSWORD.encode())]
        assert tls_smtp.inbox.messages[0].rcpt_tos == (TO[0],)

        # a wrong password: the server's refusal is logged once, in one line, without the password
        wrong = tmp_path / "wrong-password"
        wrong.write_text("Wr0ng-horse\n")
        wrong.chmod(0o600)
        bad = MailNotifier(replace(settings.email, password=Secret.from_file(wrong, "test")), events, reactor, clock)
        bad.startService()
        events.emit(StopOut("sim/sim-demo/2002", ("#2",)))
        pump(reactor, lambda: bad.dropped == 1 and len(tls_smtp.inbox.messages) == 2)
        bad.stopService()
    finally:
        notifier.stopService()
        globalLogPublisher.removeObserver(observer)
    ours = [r for r in caplog.records if r.name != "mail.log"]  # mail.log: the test server's own transcript
    refused = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert len(refused) == 1 and "535" in refused[0], refused
    logged = "\n".join([r.getMessage() for r in ours] + twisted_lines)
    for secret_text in (PASSWORD, "Wr0ng-horse"):
        assert secret_text not in logged
        for encoded in (secret_text, f"bridge\0bridge\0{secret_text}", f"\0bridge\0{secret_text}"):
            assert base64.b64encode(encoded.encode()).decode() not in logged


# -- the [notify] tables ----------------------------------------------------------------------

@pytest.mark.parametrize("table, expected", [
    ({"email": {"host": "h", "from": SENDER, "to": [TO[0]], "username": "u", "password_env": "X"}},
     "username needs starttls = true or tls = true (the password is never sent in clear)"),
    ({"email": {"host": "h", "from": SENDER, "to": [TO[0]], "starttls": True, "tls": True}},
     "set starttls or tls, not both"),
    ({"email": {"host": "h", "from": SENDER, "to": [TO[0]], "starttls": True, "username": "u",
                "password": "hunter2"}}, "password must not be written in the configuration"),
    ({"email": {"host": "h", "from": SENDER, "to": [TO[0]], "events": ["stopout"]}},
     "events: 'stopout' is not one of stop-out, pool-stop, rollover, drift, venue-down, venue-up"),
    ({"email": {"host": "h", "from": "ops", "to": [TO[0]]}}, "from 'ops' is not an e-mail address"),
    ({"email": {"host": "h", "from": SENDER, "to": []}}, "to must be a list of addresses"),
    ({"email": {"host": "h", "from": SENDER, "to": [TO[0]], "min_interval_s": -1}},
     "min_interval_s must be a non-negative number of seconds"),
    ({"outage_after_s": 0}, "outage_after_s must be a positive number of seconds"),
    ({"email": {"host": "h", "from": SENDER, "to": [TO[0]], "sender": "x"}}, "unknown key 'sender'"),
])
def test_a_bad_notify_table_is_one_clear_line(tmp_path, table, expected):
    with pytest.raises(InputError) as caught:
        parse_notify(Table(table, "bridge.toml [notify]"), tmp_path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_daemon_configuration_reads_notify(tmp_path):
    text = (ROOT / "config" / "demo.toml").read_text() + f"""
[notify]
[notify.email]
host = "127.0.0.1"
from = "{SENDER}"
to = ["{TO[0]}", "{TO[1]}"]
"""
    config = bridge_config.parse(tomllib.loads(text, parse_float=Decimal), "bridge.toml", tmp_path)
    email_settings = config.notify.email
    assert (email_settings.port, email_settings.to, email_settings.events) == (25, TO, frozenset(
        ("stop-out", "pool-stop", "rollover", "drift", "venue-down", "venue-up")))
    assert config.notify.outage_after_s == 30.0 and email_settings.min_interval_s == 60.0
    assert bridge_config.parse(tomllib.loads((ROOT / "config" / "demo.toml").read_text(), parse_float=Decimal),
                               "bridge.toml", tmp_path).notify is None


def test_the_resolved_configuration_line_shows_where_the_password_comes_from_not_the_password(tmp_path,
                                                                                              monkeypatch):
    from bridge.daemon.logs import masked

    monkeypatch.setenv("COPYBRIDGE_TEST_SMTP", PASSWORD)
    text = (ROOT / "config" / "demo.toml").read_text() + f"""
[notify.email]
host = "smtp.example.com"
starttls = true
username = "bridge"
password_env = "COPYBRIDGE_TEST_SMTP"
from = "{SENDER}"
to = ["{TO[0]}"]
"""
    config = bridge_config.parse(tomllib.loads(text, parse_float=Decimal), "bridge.toml", tmp_path)
    assert config.notify.email.password.reveal() == PASSWORD and config.notify.email.port == 587
    shown = str(masked(config))
    assert "env:COPYBRIDGE_TEST_SMTP" in shown and PASSWORD not in shown and PASSWORD not in repr(config)


def test_an_mt4_terminal_whose_ea_stops_answering_is_an_outage_by_the_venues_connection_status(smtp):
    """The real MT4 connector over ZeroMQ on 127.0.0.1: a link is down after three unanswered PINGs."""
    from tests.mt4_rig import MASTER as MT4_MASTER
    from tests.mt4_rig import Rig as MT4Rig

    rig = MT4Rig()
    events = OperatorEvents()
    watch = VenueWatch({rig.venue.server: rig.venue}, events, rig.clock, outage_after_s=1)
    notifier = MailNotifier(mail_settings(smtp.port), events, reactor, rig.clock)
    notifier.startService()
    watch.startService()
    try:
        rig.servers[MT4_MASTER].stop()
        rig.pump(lambda: not rig.venue.links[MT4_MASTER].up, seconds=10)
        assert events.emitted == 0  # down, not yet for outage_after_s
        rig.pump(lambda: events.emitted == 1, seconds=5)
        pump(reactor, lambda: len(smtp.inbox.messages) == 1)
        down = smtp.inbox.messages[0]
        assert down.subject.startswith(f"[copybridge] venue mt4 down: account {MT4_MASTER} for ")
        assert fields(down.body)["Last error"] != "-"
        rig.restart_ea(MT4_MASTER, epoch="restarted")
        rig.pump(lambda: events.emitted == 2, seconds=10)
        pump(reactor, lambda: len(smtp.inbox.messages) == 2)
        up = smtp.inbox.messages[1]
        assert up.subject.startswith(f"[copybridge] venue mt4 up again: account {MT4_MASTER} was down ")
        assert up.msg["X-Copybridge-Event"] == "venue-up"
    finally:
        watch.stopService()
        notifier.stopService()
        rig.close()
