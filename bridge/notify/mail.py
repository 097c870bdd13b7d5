"""E-mail for operator events, over SMTP with ``twisted.mail.smtp``, off the order path.

:class:`MailNotifier` subscribes to the daemon's :class:`~bridge.notify.events.OperatorEvents`
and sends one message per event of a kind ``[notify.email] events`` lists:

* ``Subject: [copybridge] <the event's subject>``; headers ``X-Copybridge-Event: <kind>``;
* a body of ``Label: value`` lines (the event's fields), then when the bridge
  noticed it and on which host.

Rate limit: at most one message per event kind in ``min_interval_s``. The
events of that kind in between are held and sent as one digest when the
interval is over (``[copybridge] digest: 3 more stop-out events``, each
event's subject and fields).

Sending: a send is a connection started on the reactor (nothing waits for
it). A failed attempt (server down, refused, timed out, rejected) is tried
again ``retries`` times, 5 s, 10 s, 20 s... later. A message given up on is
dropped, and the failure is logged once, in one line, until a message goes
through again (which is logged too, with how many were dropped). The reason
logged is the server's code and reply, never the session transcript (which
holds the AUTH exchange); the password is never logged.
"""

from __future__ import annotations

import email.policy
import logging
import socket
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from io import BytesIO

from twisted.application import service
from twisted.internet import defer
from twisted.mail import smtp

from bridge.notify.config import EmailSettings
from bridge.notify.events import OperatorEvent, OperatorEvents, when

log = logging.getLogger("bridge.notify")
RETRY_S = 5.0
# header lines up to RFC 5322's 998 characters: a long subject stays one line (no folding right after the colon);
# "\n" line ends: twisted.mail.smtp turns them into CRLF on the wire
POLICY = email.policy.default.clone(max_line_length=998)


def reason(failure) -> str:
    """One line on why a send failed: the server's code and reply, or the connection error."""
    exc = failure.value
    if isinstance(exc, smtp.SMTPClientError):
        resp = exc.resp.decode("utf-8", "replace") if isinstance(exc.resp, bytes) else str(exc.resp)
        text = f"{exc.code} {resp}" if exc.code and exc.code > 0 else resp
        return " ".join(text.split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class MailNotifier(service.Service):
    name = "notify-mail"

    def __init__(self, settings: EmailSettings, events: OperatorEvents, reactor, clock=None, *,
                 hostname: str | None = None) -> None:
        self.settings, self.events, self.reactor = settings, events, reactor
        self.clock = clock or reactor  # timestamps, the rate limit and the retry backoff
        self.hostname = hostname or socket.gethostname()
        self.sent = self.dropped = self.suppressed = 0
        self.failing = False
        self._last: dict[str, float] = {}  # kind -> when its last message was sent
        self._held: dict[str, list[tuple[OperatorEvent, float]]] = {}
        self._timers: dict[object, object] = {}  # digest timers by kind, retry timers by message id
        self._in_flight: dict[object, object] = {}  # message id -> its connector

    def startService(self) -> None:
        super().startService()
        self.events.subscribe(self.notify)
        s = self.settings
        log.info("notify: mail to %s via %s:%d%s for %s", ", ".join(s.to), s.host, s.port,
                 " (starttls)" if s.starttls else " (tls)" if s.tls else "", ", ".join(sorted(s.events)))

    def stopService(self):
        self.events.unsubscribe(self.notify)
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        for connector in list(self._in_flight.values()):
            connector.disconnect()  # a send under way fails, and is not tried again
        self._in_flight.clear()
        return super().stopService()

    # -- events -> messages ----------------------------------------------------
    def notify(self, event: OperatorEvent) -> None:
        kind = event.kind
        if kind not in self.settings.events or not self.running:
            return
        now = self.clock.seconds()
        last = self._last.get(kind)
        interval = self.settings.min_interval_s
        if interval and last is not None and now - last < interval:
            self.suppressed += 1
            self._held.setdefault(kind, []).append((event, now))
            if kind not in self._timers:
                self._timers[kind] = self.clock.callLater(last + interval - now, self._digest, kind)
            return
        self._last[kind] = now
        self.send(self.compose(f"[copybridge] {event.subject()}", kind, self._body([(event, now)])))

    def _digest(self, kind: str) -> None:
        self._timers.pop(kind, None)
        held = self._held.pop(kind, [])
        if not held:
            return
        self._last[kind] = self.clock.seconds()
        subject = f"[copybridge] digest: {len(held)} more {kind} event(s) held by the rate limit"
        intro = (f"{len(held)} {kind} event(s) came within min_interval_s = {self.settings.min_interval_s:g} s "
                 "of the last mail of that kind:\n\n")
        self.send(self.compose(subject, kind, intro + self._body(held, numbered=True)))

    def _body(self, events: list[tuple[OperatorEvent, float]], numbered: bool = False) -> str:
        blocks = []
        for i, (event, noticed) in enumerate(events, 1):
            lines = [f"{i}. {event.subject()}"] if numbered else []
            lines += [f"{label}: {value}" for label, value in event.fields()]
            lines.append(f"Noticed: {when(noticed)}")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks) + f"\n\n-- \ncopybridge on {self.hostname}\n"

    def compose(self, subject: str, kind: str, body: str) -> EmailMessage:
        s = self.settings
        msg = EmailMessage(policy=POLICY)
        msg["From"] = s.sender
        msg["To"] = ", ".join(s.to)
        msg["Subject"] = subject
        msg["Date"] = formatdate(self.clock.seconds(), usegmt=True)
        msg["Message-ID"] = make_msgid("copybridge")
        msg["X-Copybridge-Event"] = kind
        msg.set_content(body)
        return msg

    # -- sending -------------------------------------------------------------
    def send(self, msg: EmailMessage, attempt: int = 1) -> defer.Deferred:
        """Start sending ``msg`` (returns at once); fires True when sent, False when given up on."""
        s = self.settings
        ident = msg["Message-ID"]
        self._timers.pop(ident, None)
        done = defer.Deferred()
        secret = s.password.reveal().encode() if s.password is not None else None
        factory = smtp.ESMTPSenderFactory(
            s.username.encode() if s.username else None, secret, s.sender, list(s.to),
            BytesIO(msg.as_bytes()), done, retries=0, timeout=s.timeout_s, contextFactory=self._tls(),
            heloFallback=not (s.username or s.starttls), requireAuthentication=s.username is not None,
            requireTransportSecurity=s.starttls or s.tls, hostname=s.host)
        try:
            if s.tls:
                self._in_flight[ident] = self.reactor.connectSSL(s.host, s.port, factory, self._tls(),
                                                                 timeout=s.timeout_s)
            else:
                self._in_flight[ident] = self.reactor.connectTCP(s.host, s.port, factory, timeout=s.timeout_s)
        except Exception as exc:  # a host name the reactor refuses at once
            done.errback(exc)
        outcome = defer.Deferred()

        def sent(_):
            self._in_flight.pop(ident, None)
            self.sent += 1
            if self.failing:
                self.failing = False
                log.info("notify: %s:%d takes mail again (%d notification(s) were dropped meanwhile)",
                         s.host, s.port, self.dropped)
            outcome.callback(True)

        def failed(failure):
            self._in_flight.pop(ident, None)
            if not self.running:
                outcome.callback(False)
                return
            if attempt <= s.retries:
                delay = RETRY_S * 2 ** (attempt - 1)
                self._timers[ident] = self.clock.callLater(
                    delay, lambda: self.send(msg, attempt + 1).chainDeferred(outcome))
                return
            self.dropped += 1
            if not self.failing:
                self.failing = True
                log.warning("notify: cannot send mail via %s:%d: %s; %r dropped after %d attempt(s); further "
                            "failures are not logged until a mail goes through", s.host, s.port, reason(failure),
                            str(msg["Subject"]), attempt)
            outcome.callback(False)

        done.addCallbacks(sent, failed)
        return outcome

    def _tls(self):
        s = self.settings
        if not (s.starttls or s.tls):
            return None
        from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust

        trust = Certificate.loadPEM(s.ca_pem) if s.ca_pem is not None else platformTrust()
        return optionsForClientTLS(s.host, trustRoot=trust)
