"""Venue outages: a connection down for ``outage_after_s`` is ``VenueDown``; its return, ``VenueUp``.

:class:`VenueWatch` looks at every venue once a second (``interval_s``), by
what the venue itself says about its connections:

* a venue with ``connection_status()`` (cTrader: each pooled connection,
  ``connected``; MT4 and MT5: each terminal, ``up``): every entry that is not
  up is one outage, named by its connection or account;
* the simulated venue: its ``disconnected`` flag (the whole venue);
* a venue with neither (a simulated venue in another process) is not watched.

A connection that comes back within ``outage_after_s`` (a reconnect) emits
nothing. One that stays down emits ``VenueDown`` once; when it comes back,
``VenueUp`` with the outage's duration. A venue whose status cannot be read is
logged once and skipped.
"""

from __future__ import annotations

import logging

from twisted.application import service
from twisted.internet.task import LoopingCall

from bridge.notify.events import OperatorEvents, VenueDown, VenueUp

log = logging.getLogger("bridge.notify")
OUTAGE_AFTER_S = 30.0


def down_parts(venue) -> dict[str, str] | None:
    """The venue's connections that are down now (name -> last error); None: the venue says nothing."""
    status = getattr(venue, "connection_status", None)
    if callable(status):
        down = {}
        for entry in status():
            up = entry.get("up", entry.get("connected"))
            if up is False:
                name = f"connection {entry['connection']}" if "connection" in entry else f"account {entry.get('login')}"
                down[name] = str(entry.get("last_error") or entry.get("down") or "")
        return down
    if hasattr(venue, "disconnected"):
        return {"venue": "disconnected"} if venue.disconnected else {}
    return None


class VenueWatch(service.Service):
    name = "venue-watch"

    def __init__(self, venues: dict, events: OperatorEvents, clock, *, outage_after_s: float = OUTAGE_AFTER_S,
                 interval_s: float = 1.0) -> None:
        self.venues, self.events, self.clock = venues, events, clock
        self.outage_after_s, self.interval_s = outage_after_s, interval_s
        # (venue name, part) -> [down since, reported, last error]
        self.down: dict[tuple[str, str], list] = {}
        self._unreadable: set[str] = set()

    def startService(self) -> None:
        super().startService()
        self.loop = LoopingCall(self.check)
        self.loop.clock = self.clock
        self.loop.start(self.interval_s, now=True)

    def stopService(self):
        if self.loop.running:
            self.loop.stop()
        return super().stopService()

    def check(self) -> None:
        now = self.clock.seconds()
        for server, venue in self.venues.items():
            name = getattr(server, "name", str(server))
            try:
                parts = down_parts(venue)
            except Exception as exc:
                if name not in self._unreadable:
                    self._unreadable.add(name)
                    log.warning("notify: cannot read the connection state of venue %s: %s", name, exc)
                continue
            if parts is None:
                continue
            for part, why in parts.items():
                state = self.down.setdefault((name, part), [now, False, why])
                state[2] = why or state[2]
                if not state[1] and now - state[0] >= self.outage_after_s:
                    state[1] = True
                    self.events.emit(VenueDown(name, part, state[0], now, state[2]))
            for key in [k for k in self.down if k[0] == name and k[1] not in parts]:
                since, reported, _ = self.down.pop(key)
                if reported:
                    self.events.emit(VenueUp(name, key[1], since, now))
