"""The cTrader side of ``bridge bench --platform ctrader``: the local server, trading its master, with a stopwatch.

Run as its own process (``python -m bridge.bench.ctrader_wire``) so that the
server's matching never shares a CPU turn with the bridge being measured. It
serves the Open API over TLS on 127.0.0.1 and waits until one connection has
authorised every account (the bridge). Then, for each of ``warmup + deals``
master deals, it trades the master as a trader at the platform would
(alternately open 1 lot and close it), and measures on the wire:

* start: just before the master's ``ORDER_FILLED`` ExecutionEvent is written to
  the bridge's connection;
* stop: the moment the last follower's order request (``NewOrderReq`` or
  ``ClosePositionReq``) comes off the bridge's connections, before the server
  acts on it.

The next deal waits until the bridge has been quiet (no request) for
``QUIET_S`` or ``PACE_S`` has passed, so the bridge's follow-up requests
(account figures) are not counted against the next deal; and at least
``--gap-s`` after the previous deal began: the time the bridge's token buckets
need to refill after a fan-out (cTrader allows 50 requests per second per
connection; a master trading faster than the buckets refill queues its
followers' orders, which this benchmark does not measure). The result is one JSON
line on stdout: ``{"samples_ns": [...]}`` (after a ``listening PORT`` line and a
``deal`` line per measured deal).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

ORDER_REQUESTS = frozenset({oa.ProtoOANewOrderReq().payloadType, oa.ProtoOAClosePositionReq().payloadType})
QUIET_S = 0.05
PACE_S = 2.0
SETTLE_S = 1.0  # after the bridge is connected: its reconcile and backfill
LOT = 10_000_000  # EURUSD, hundredths of a unit


class Stopwatch:
    def __init__(self, server, reactor, master: int, followers: int, deals: int, warmup: int,
                 gap_s: float = 0.0) -> None:
        self.server, self.reactor = server, reactor
        self.gap_s = gap_s
        self.master, self.followers, self.deals, self.warmup = master, followers, deals, warmup
        self.samples: list[int] = []
        self.starts: list[int] = []
        self.stops: list[int] = []
        self.started_ns = 0
        self.orders = 0
        self.last_order_ns = 0
        self.last_frame = 0.0
        self.position = None
        self.n = 0
        server.frame_hook = self.frame

    def frame(self, payload_type: int) -> None:
        now = time.perf_counter_ns()
        self.last_frame = time.monotonic()
        if payload_type in ORDER_REQUESTS and self.started_ns:
            self.orders += 1
            self.last_order_ns = now

    def wait_for_bridge(self) -> None:
        everyone = set(self.server.accounts)
        held = set()
        for session in self.server.sessions:
            held |= set(session.accounts)
        if held >= everyone:
            self.reactor.callLater(SETTLE_S, self.next_deal)
        else:
            self.reactor.callLater(0.05, self.wait_for_bridge)

    def next_deal(self) -> None:
        if self.n == self.warmup + self.deals:
            # starts_ns / stops_ns: the raw CLOCK_MONOTONIC readings, comparable with the bridge process's
            print(json.dumps({"samples_ns": self.samples, "starts_ns": self.starts, "stops_ns": self.stops}),
                  flush=True)
            return  # serve on until the bench has stopped the bridge and ends this process
        engine = self.server.engine
        if self.position is None:
            emissions = engine.new_order(oa.ProtoOANewOrderReq(
                ctidTraderAccountId=self.master, symbolId=self.server.symbols.id_of("EURUSD"),
                orderType=model.MARKET, tradeSide=model.BUY, volume=LOT))
        else:
            emissions = engine.close_position(oa.ProtoOAClosePositionReq(
                ctidTraderAccountId=self.master, positionId=self.position, volume=LOT))
        filled = [e for e in emissions if e.fill]
        self.server.publish([e for e in emissions if not e.fill])
        self.orders = 0
        self.started_ns = time.perf_counter_ns()
        self.server.publish(filled)
        event = filled[-1].message
        self.position = None if self.position is not None else event.position.positionId
        self.deal_started = time.monotonic()
        self.reactor.callLater(0.001, self.deal_done)

    def deal_done(self) -> None:
        now = time.monotonic()
        if self.orders < self.followers:
            if now - self.deal_started > 30:
                print(json.dumps({"error": f"deal {self.n}: {self.orders} of {self.followers} follower orders "
                                           "in 30 s"}), flush=True)
                self.reactor.stop()
                return
            self.reactor.callLater(0.001, self.deal_done)
            return
        if now - self.deal_started < self.gap_s or (now - self.last_frame < QUIET_S
                                                     and now - self.deal_started < PACE_S):
            self.reactor.callLater(0.005, self.deal_done)
            return
        if self.n >= self.warmup:
            self.samples.append(self.last_order_ns - self.started_ns)
            self.starts.append(self.started_ns)
            self.stops.append(self.last_order_ns)
            print("deal", flush=True)  # progress, for the bench's bar
        self.started_ns = 0
        self.n += 1
        if self.n == self.warmup:  # the warm-up's first account-figure fetch drained the buckets: let them refill
            self.reactor.callLater(SETTLE_S * 2, self.next_deal)
            return
        self.next_deal()


def credentials(followers: int, seed: int) -> dict:
    rng = random.Random(seed)
    return {
        "application": {"client_id": "bench", "client_secret": "bench-secret"},
        "tokens": [{"access_token": "bench-token", "refresh_token": "bench-refresh"}],
        "accounts": [
            {"ctid_trader_account_id": 1, "trader_login": 1, "token": "bench-token", "balance": "100000"},
            *({"ctid_trader_account_id": 100 + i, "trader_login": 100 + i, "token": "bench-token",
               "balance": str(rng.randrange(5_000, 50_000))} for i in range(followers)),
        ],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--followers", type=int, required=True)
    p.add_argument("--deals", type=int, required=True)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--gap-s", type=float, default=0.0, help="at least this long from one deal to the next")
    p.add_argument("--ca-out", type=Path, required=True)
    args = p.parse_args(argv)
    from twisted.internet import reactor

    from connectors.ctrader.server import CTraderServer, Credentials

    server = CTraderServer(Credentials.parse(credentials(args.followers, args.seed)), clock=reactor,
                           rng=random.Random(args.seed))
    listening = server.listen(reactor)
    args.ca_out.write_bytes(server.identity.ca_pem)
    print(f"listening {listening.getHost().port}", flush=True)
    watch = Stopwatch(server, reactor, 1, args.followers, args.deals, args.warmup, args.gap_s)
    reactor.callWhenRunning(watch.wait_for_bridge)
    reactor.run()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
