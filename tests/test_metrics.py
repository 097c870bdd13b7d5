"""Metrics: ``bridge run`` serves Prometheus text on ``[metrics] listen``; scraped over real HTTP on 127.0.0.1.

Three processes: a simulated venue (``python -m connectors.sim.serve``) that
refuses some orders, the bridge, and this test, which trades the master
through the venue's socket and scrapes ``/metrics``. The exposition text is
parsed by the small parser below (the format's grammar, not the registry's
own code), so a malformed line fails the test.
"""

from __future__ import annotations

import math
import os
import re
import socket
import urllib.error
import urllib.request

import pytest
import zmq

from bridge.daemon import config as bridge_config
from bridge.daemon.metrics import Registry
from tests.processes import Client, Daemon, free_port_endpoint, start_venue, wait_for, write_accounts

VENUE = "metrics"
FOLLOWERS = (2001, 2002, 2003)

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse(text: str) -> tuple[dict, dict]:
    """Exposition text -> ({(name, frozenset(labels)): value}, {family: type}); asserts every line is valid."""
    samples, types = {}, {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels, rest = {}, m.group(3) or ""
        while rest:
            lm = _LABEL.match(rest)
            assert lm, f"bad labels in {line!r}"
            labels[lm.group(1)] = re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), lm.group(2))
            rest = rest[lm.end():]
        family = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        assert family in types or m.group(1) in types, f"sample before its TYPE: {line!r}"
        samples[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return reply.headers["Content-Type"], reply.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path, endpoint, deals, replay, control, metrics: str):
    copies = "".join(f"[[copy]]\nmaster = \"{VENUE}/1000\"\nfollower = \"{VENUE}/{f}\"\n" for f in FOLLOWERS)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"[store]\npath = \"{tmp_path / 'bridge.sqlite'}\"\n"
        f"[bus]\ndeals = \"{free_port_endpoint()}\"\ndeals_replay = \"{free_port_endpoint()}\"\n"
        f"heartbeat_ms = 50\ncontrol = \"{control}\"\n"
        f"[metrics]\nlisten = \"{metrics}\"\n"
        f"[[venue]]\nname = \"{VENUE}\"\nplatform = \"sim\"\nendpoint = \"{endpoint}\"\n"
        f"deals_endpoint = \"{deals}\"\nreplay_endpoint = \"{replay}\"\n"
        f"[[master]]\naccount = \"{VENUE}/1000\"\n{copies}")
    return config


@pytest.fixture
def venue(tmp_path, request):
    ctx = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(0))
    accounts = write_accounts(tmp_path / "accounts.toml", VENUE,
                              [(1000, 100000), *((f, 20000) for f in FOLLOWERS)],
                              fill_latency_us=1000, slippage_points=3, reject_rate='"0.25"')
    return ctx, start_venue(accounts, tmp_path / "venue.log", request)


def test_scrape_after_master_trades_counts_and_histograms_move(tmp_path, venue):
    ctx, (endpoint, deals, replay) = venue
    port = free_port()
    control = free_port_endpoint()
    bridge = Daemon(write_config(tmp_path, endpoint, deals, replay, control, f"127.0.0.1:{port}"),
                    tmp_path / "bridge.log", ctx, control)
    try:
        bridge.start()
        bridge.wait(lambda s: s and s.get("venues_ready"), "the venue to be ready")
        content_type, text = scrape(port)
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        before, types = parse(text)
        assert value(before, "copybridge_master_deals_total") == 0
        assert value(before, "copybridge_followers") == len(FOLLOWERS)
        assert value(before, "copybridge_pools") == 0
        assert value(before, "copybridge_venue_connected", venue=f"sim/{VENUE}") == 1

        client = Client(ctx, endpoint)
        master = f"sim/{VENUE}/1000"
        trades = 8
        for i in range(trades // 2):
            opened = client.venue("trade", account=master, symbol="EURUSD", side="buy" if i % 2 else "sell",
                                  amount="1.00")
            client.venue("close", account=master, position_id=opened["position_id"])
        status = bridge.wait(lambda s: s and s["worker"]["journal"]["deals"] >= trades and s["worker"]["idle"]
                             and not any(s["worker"]["intents"].get(k) for k in ("planned", "sent", "unknown")),
                             "the master's deals to be copied")
        intents = status["worker"]["intents"]

        _, text = scrape(port)
        after, types = parse(text)
        assert types["copybridge_copy_latency_seconds"] == "histogram"
        assert types["copybridge_orders_total"] == "counter"
        assert types["copybridge_followers"] == "gauge"
        assert value(after, "copybridge_master_deals_total") == status["worker"]["journal"]["deals"]
        filled = value(after, "copybridge_orders_total", platform="sim", state="filled")
        rejected = value(after, "copybridge_orders_total", platform="sim", state="rejected") or 0
        assert filled == intents["filled"] and rejected == intents.get("rejected", 0)
        assert filled > 0 and rejected > 0, "with reject_rate 0.25 over 24 orders some should be refused"
        reasons = {dict(k[1])["reason"]: v for k, v in after.items() if k[0] == "copybridge_rejections_total"}
        assert sum(reasons.values()) == rejected and all(reasons)

        # the latency histogram: one observation per fill, cumulative buckets ending at +Inf == count
        count = value(after, "copybridge_copy_latency_seconds_count", platform="sim")
        assert count == filled
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in after.items()
                         if k[0] == "copybridge_copy_latency_seconds_bucket")
        assert buckets[-1] == (math.inf, count)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        total = value(after, "copybridge_copy_latency_seconds_sum", platform="sim")
        assert 0.001 <= total / count < 5  # the venue takes 1 ms to fill; well under seconds on loopback
        assert value(after, "copybridge_slippage_points_count", platform="sim") == filled
        assert value(after, "copybridge_slippage_points_bucket", platform="sim", le="+Inf") == filled
        assert value(after, "copybridge_bad_frames_total") == 0
        assert value(after, "copybridge_drift_total") == 0

        # anything but /metrics is a 404, not a traceback
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert missing.value.code == 404
    finally:
        bridge.stop()
    log = (tmp_path / "bridge.log").read_text()
    assert f"serving /metrics on http://127.0.0.1:{port}/metrics" in log
    assert "Traceback" not in log


def test_listen_empty_serves_nothing(tmp_path, venue):
    ctx, (endpoint, deals, replay) = venue
    control = free_port_endpoint()
    path = write_config(tmp_path, endpoint, deals, replay, control, "")
    config = bridge_config.load(path)
    assert config.metrics_listen == ""
    bridge = Daemon(path, tmp_path / "bridge.log", ctx, control)
    try:
        bridge.start()
        wait_for(lambda: (bridge.status() or {}).get("venues_ready"), "the venue to be ready")
        # the daemon's own listening TCP sockets: /proc/net/tcp* rows in state LISTEN whose inode it holds
        pid = bridge.process.pid
        held = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except FileNotFoundError:  # closed meanwhile (the daemon keeps working)
                pass
        rows = [line.split() for name in ("tcp", "tcp6") for line in open(f"/proc/net/{name}").read().splitlines()[1:]]
        ports = {int(row[1].rsplit(":", 1)[1], 16) for row in rows if row[3] == "0A" and f"socket:[{row[9]}]" in held}
        bus = {int(e.rsplit(":", 1)[1]) for e in (config.control_endpoint, config.deals_endpoint,
                                                   config.deals_replay_endpoint)}
        assert ports == bus, f"listening on {sorted(ports)}; the bus and control sockets are {sorted(bus)}"
    finally:
        bridge.stop()
    assert "serving /metrics" not in (tmp_path / "bridge.log").read_text()


def test_exposition_escapes_labels_and_help():
    r = Registry()
    c = r.counter("x_total", 'Help with \\ and\nnewline.', ("reason",))
    c.inc(('say "no"\\\n',))
    h = r.histogram("lat_seconds", "Latency.", ("platform",), (0.001, 0.01), scale=1_000_000_000)
    h.observe(("mt5",), 1_000_000)  # exactly 1 ms: in the le="0.001" bucket
    h.observe(("mt5",), 20_000_000)
    text = r.render()
    assert '# HELP x_total Help with \\\\ and\\nnewline.' in text
    assert 'x_total{reason="say \\"no\\"\\\\\\n"} 1' in text
    samples, types = parse(text)
    assert value(samples, "x_total", reason='say "no"\\\n') == 1
    assert value(samples, "lat_seconds_bucket", platform="mt5", le="0.001") == 1
    assert value(samples, "lat_seconds_bucket", platform="mt5", le="0.01") == 1
    assert value(samples, "lat_seconds_bucket", platform="mt5", le="+Inf") == 2
    assert value(samples, "lat_seconds_sum", platform="mt5") == pytest.approx(0.021)
