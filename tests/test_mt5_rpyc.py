"""The mt5linux provider against ``bridge sim mt5``: a real rpyc classic server in a subprocess, on 127.0.0.1."""

from __future__ import annotations

import inspect
import socket
import os
import select
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import rpyc

from connectors.mt5.rpyc_provider import ProtocolError, RpycTerminal, TerminalUnreachable, call_source, rebuild
from connectors.mt5.terminal import records

LOGIN = 5001


def _command(*args: str) -> list[str]:
    bridge = Path(sys.executable).with_name("bridge")
    if bridge.exists():
        return [str(bridge), "sim", "mt5", *args]
    return [sys.executable, "-m", "connectors.mt5.serve", *args]


def start_server(*args: str) -> tuple[subprocess.Popen, int]:
    """Start the simulator on a free port; its first line names the port."""
    proc = subprocess.Popen(_command("--port", "0", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    if not ready:
        proc.kill()
        pytest.fail("bridge sim mt5 printed nothing within 15 s")
    line = proc.stdout.readline()
    assert line.startswith("listening on rpyc://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
    return proc, int(line.split("rpyc://127.0.0.1:")[1].split()[0])


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


@pytest.fixture(scope="module")
def server():
    proc, port = start_server("--login", str(LOGIN), "--hedging", "--balance", "10000", "--tick-interval-ms", "50")
    yield port
    stop_server(proc)


@pytest.fixture(scope="module")
def mt5(server):
    terminal = RpycTerminal(port=server, timeout_s=10)
    assert terminal.initialize(login=LOGIN, password="password", server="SimBroker-Demo") is True
    yield terminal
    terminal.close()


def filling_of(info) -> int:
    """An order filling the symbol allows: its filling_mode is a bitmask, 1 FOK, 2 IOC."""
    return 0 if info.filling_mode & 1 else 1 if info.filling_mode & 2 else 2


def window():
    now = datetime.now(timezone.utc)
    return now - timedelta(days=1), now + timedelta(days=1)  # deal times are server time: pad


def test_initialize_and_account_info(mt5):
    assert mt5.last_error() == (1, "Success")
    info = mt5.account_info()
    assert type(info) is records.AccountInfo
    assert info.login == LOGIN
    assert info.margin_mode == mt5.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    assert info.balance == 10000.0 and info.currency == "USD" and info.server == "SimBroker-Demo"
    assert type(mt5.terminal_info()) is records.TerminalInfo
    assert mt5.version()[0] == 500


def test_constants_are_local_and_signatures_are_the_modules(mt5):
    assert mt5.TRADE_RETCODE_DONE == 10009 and mt5.ORDER_FILLING_BOC == 3 and mt5.DEAL_ENTRY_OUT == 1
    assert mt5.constants["TRADE_ACTION_DEAL"] == 1
    params = inspect.signature(RpycTerminal.initialize).parameters
    assert params["login"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(RpycTerminal.history_deals_get).parameters) == [
        "self", "date_from", "date_to", "group", "ticket", "position"]


def test_open_partial_close_and_history(mt5):
    info = mt5.symbol_info("EURUSD")
    assert type(info) is records.SymbolInfo and info.name == "EURUSD" and info.digits == 5
    tick = mt5.symbol_info_tick("EURUSD")
    assert type(tick) is records.Tick and tick.ask > tick.bid > 0
    opened = mt5.order_send({
        "action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.3, "type": mt5.ORDER_TYPE_BUY,
        "price": tick.ask, "deviation": 200, "magic": 77, "comment": "cb:k1", "type_time": mt5.ORDER_TIME_GTC,
        "type_filling": filling_of(info)})
    assert type(opened) is records.OrderSendResult and type(opened.request) is records.TradeRequest
    assert opened.retcode == mt5.TRADE_RETCODE_DONE, opened
    assert opened.request.comment == "cb:k1" and opened.volume == 0.3
    (position,) = mt5.positions_get(ticket=opened.order)
    assert type(position) is records.TradePosition
    assert position.comment == "cb:k1" and position.magic == 77 and position.identifier == position.ticket

    bid = mt5.symbol_info_tick("EURUSD").bid
    closed = mt5.order_send({
        "action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "type": mt5.ORDER_TYPE_SELL,
        "position": position.ticket, "price": bid, "deviation": 200, "magic": 77, "comment": "cb:k2",
        "type_time": mt5.ORDER_TIME_GTC, "type_filling": filling_of(info)})
    assert closed.retcode == mt5.TRADE_RETCODE_DONE, closed
    (after,) = mt5.positions_get(symbol="EURUSD")
    assert after.ticket == position.ticket
    assert Decimal(repr(after.volume)) == Decimal("0.2")

    deals = mt5.history_deals_get(*window())
    assert all(type(d) is records.TradeDeal for d in deals)
    mine = [d for d in deals if d.position_id == position.ticket]
    assert [(d.entry, d.volume, d.type) for d in mine] == [
        (mt5.DEAL_ENTRY_IN, 0.3, mt5.DEAL_TYPE_BUY), (mt5.DEAL_ENTRY_OUT, 0.1, mt5.DEAL_TYPE_SELL)]
    assert mine[0].ticket == opened.deal and mine[1].ticket == closed.deal
    assert mt5.history_deals_get(position=position.ticket) == tuple(mine)
    assert mt5.history_deals_total(*window()) == len(deals)
    # a naive datetime goes as its wall-clock fields, an int as seconds: both survive the trip
    assert mt5.history_deals_get(0, 2**31 - 1) == deals
    assert mt5.history_deals_get(datetime(2000, 1, 1), datetime(2100, 1, 1)) == deals


def test_bad_requests_return_none_and_set_last_error(mt5):
    assert mt5.order_send({"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 1,
                           "type": mt5.ORDER_TYPE_BUY}) is None  # an int volume: the real package refuses it
    assert mt5.last_error() == (mt5.RES_E_INVALID_PARAMS, 'Invalid "volume" argument')
    assert mt5.symbol_info("NOSUCH") is None
    assert mt5.last_error()[0] != 1
    assert mt5.positions_get(symbol="NOSUCH") == ()


def test_another_client_sees_trades_made_by_hand(server, mt5):
    """A script using rpyc classic the mt5linux way (remote import, eval) trades on the same account."""
    conn = rpyc.classic.connect("127.0.0.1", server)
    try:
        conn.execute("import MetaTrader5 as mt5")
        ask = conn.eval("mt5.symbol_info_tick('EURUSD').ask")
        retcode, order = conn.eval(
            "(lambda r: (r.retcode, r.order))(mt5.order_send({'action': 1, 'symbol': 'EURUSD', 'volume': 0.05, "
            f"'type': 0, 'price': {ask!r}, 'deviation': 200, 'magic': 9, 'comment': 'by hand', "
            "'type_time': 0, 'type_filling': 0}))")
        assert retcode == 10009
    finally:
        conn.close()
    (position,) = mt5.positions_get(ticket=order)
    assert position.comment == "by hand" and position.volume == 0.05


def test_prices_step_on_a_timer(mt5):
    first = mt5.symbol_info_tick("EURUSD")
    deadline = time.monotonic() + 5
    while mt5.symbol_info_tick("EURUSD").time_msc == first.time_msc:  # the server's timer steps the prices
        assert time.monotonic() < deadline, "prices did not move in 5 s"
    assert mt5.symbol_info_tick("EURUSD").time_msc > first.time_msc


def test_arguments_and_results_are_plain_values():
    source = call_source("history_deals_get", (datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),
                                               datetime(2024, 1, 2)), {"group": "*EUR*"})
    assert source == ("_cb_plain(mt5.history_deals_get(datetime.datetime(2024, 1, 1, 0, 0, 0, 0, "
                      "tzinfo=datetime.timezone.utc), datetime.datetime(2024, 1, 2, 0, 0, 0, 0), group='*EUR*'))")
    assert call_source("order_send", ({"volume": 0.1, "comment": "a'b"},), {}) == \
        "_cb_plain(mt5.order_send({'volume': 0.1, 'comment': \"a'b\"}))"
    with pytest.raises(TypeError):
        call_source("order_send", ({"volume": Decimal("0.1")},), {})
    assert rebuild(("t", (1, ("r", "Tick", tuple((f, 0) for f in records.Tick._fields))))) == (1, records.Tick(
        *([0] * 8)))
    with pytest.raises(ProtocolError):
        rebuild(("r", "Mystery", ()))
    with pytest.raises(ProtocolError):
        rebuild(("r", "Tick", (("time", 1),)))


def test_round_trip_cost(mt5):
    mt5.symbol_info_tick("EURUSD")
    n = 300
    started = time.perf_counter()
    for _ in range(n):
        mt5.symbol_info_tick("EURUSD")
    tick_ms = (time.perf_counter() - started) / n * 1000
    started = time.perf_counter()
    for _ in range(50):
        mt5.history_deals_get(*window())
    deals_ms = (time.perf_counter() - started) / 50 * 1000
    print(f"\nrpyc round trip: symbol_info_tick {tick_ms:.3f} ms, history_deals_get {deals_ms:.3f} ms")


def test_a_killed_server_raises_terminal_unreachable():
    proc, port = start_server("--login", "6001", "--netting", "--tick-interval-ms", "0")
    try:
        terminal = RpycTerminal(port=port, timeout_s=5)
        assert terminal.initialize(login=6001, password="password", server="SimBroker-Demo")
        assert terminal.account_info().margin_mode == terminal.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    finally:
        stop_server(proc)
    with pytest.raises(TerminalUnreachable, match="connection lost"):
        terminal.account_info()
    with pytest.raises(TerminalUnreachable):
        terminal.last_error()
    assert not terminal.connected
    with pytest.raises(TerminalUnreachable, match="cannot reach"):
        RpycTerminal(port=port, timeout_s=2)


def test_cli_usage_errors_exit_2():
    result = subprocess.run(_command("--login", "1", "--balance", "lots"), capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == 2 and "--balance" in result.stderr and len(result.stderr.splitlines()) == 1
    result = subprocess.run(_command("--port", "0"), capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "--login" in result.stderr


def wait_stopped(pid: int, timeout_s: float = 5.0) -> None:
    """Until the process is stopped: kill() returns before a SIGSTOP has stopped every thread of it (a thread
    running on another CPU may still answer a request meanwhile)."""
    def states() -> set[str]:  # the field after "(comm)" of each thread's stat
        return {(task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                for task in Path(f"/proc/{pid}/task").iterdir()}

    deadline = time.monotonic() + timeout_s
    while not states() <= {"T", "t"}:  # every thread stopped
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.001)


def test_a_hung_server_times_out_as_terminal_unreachable():
    proc, port = start_server("--login", "7001", "--tick-interval-ms", "0")
    try:
        terminal = RpycTerminal(port=port, timeout_s=1)
        assert terminal.positions_total() is None  # not initialized yet
        assert terminal.last_error()[0] != 1
        os.kill(proc.pid, signal.SIGSTOP)
        wait_stopped(proc.pid)
        started = time.monotonic()
        with pytest.raises(TerminalUnreachable, match="no answer within 1 s"):
            terminal.positions_total()
        assert time.monotonic() - started < 5
        with pytest.raises(TerminalUnreachable):
            terminal.positions_total()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        stop_server(proc)


def test_the_simulator_accepts_connections_as_soon_as_it_names_its_address():
    """``bridge sim mt5`` prints its address before serving: the socket must already listen then (a client
    connecting at once waits in the backlog rather than being refused)."""
    from connectors.mt5.serve import make_server

    server = make_server("127.0.0.1", 0)
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()  # not started yet
    finally:
        server.close()


def test_an_error_raised_by_the_call_on_the_server_propagates_as_itself_and_keeps_the_link(server):
    terminal = RpycTerminal(port=server, timeout_s=10)
    try:
        # in this connection's namespace only, ``mt5.version`` fails the way a broken pipe to the terminal would
        terminal._conn.execute("class _Broken:\n    def version(self):\n"
                               "        raise OSError(5, 'pipe to the terminal failed')\nmt5 = _Broken()")
        with pytest.raises(OSError, match="pipe to the terminal failed") as raised:
            terminal.version()
        assert not isinstance(raised.value, TerminalUnreachable) and terminal.connected
        terminal._conn.execute("import MetaTrader5 as mt5")
        assert terminal.version()[0] == 500
    finally:
        terminal.close()


#: Sent by a second, plain rpyc classic client (any script may connect to the server and run anything there): in
#: the server, it finds the connection of the client on ``peer_port`` and tries to reach into that client.
PROBE = '''
import gc, threading, rpyc

_cb_out = []

def _cb_probe(peer_port):
    def attempt(name, how):
        try:
            _cb_out.append((name, "reached", repr(how())))
        except Exception as exc:
            _cb_out.append((name, "refused", type(exc).__name__))

    def run():
        for c in [o for o in gc.get_objects() if isinstance(o, rpyc.Connection)]:
            try:
                if c.closed or c._channel.stream.sock.getpeername()[1] != peer_port:
                    continue
            except Exception:
                continue
            c._config["sync_request_timeout"] = 5
            attempt("eval", lambda: c.root.eval("__import__('os').getpid()"))
            attempt("getmodule", lambda: c.root.getmodule("os").getpid())
            attempt("execute", lambda: c.root.execute("import os"))
            attempt("namespace", lambda: sorted(c.root.namespace))
            attempt("private", lambda: c.root._conn)
            attempt("globals", lambda: sorted(c.root.__class__.__init__.__globals__))
        _cb_out.append(("done", "", ""))

    threading.Thread(target=run, daemon=True).start()
'''


def probe_through_the_server(port: int, victim_port: int, serve) -> dict[str, tuple[str, str]]:
    """What code in the server reaches in the client connected from ``victim_port``; ``serve()`` makes that client
    read its socket (an rpyc client answers its peer's requests while it waits for its own)."""
    attacker = rpyc.classic.connect("127.0.0.1", port)
    try:
        attacker.execute(PROBE)
        attacker.eval(f"_cb_probe({victim_port})")
        deadline = time.monotonic() + 20
        while (out := attacker.eval("tuple(_cb_out)")) == () or out[-1][0] != "done":
            assert time.monotonic() < deadline, f"the probe did not finish: {out}"
            serve()
        return {name: (outcome, value) for name, outcome, value in out[:-1]}
    finally:
        attacker.close()


def test_code_in_the_server_reaches_nothing_in_the_provider_though_it_does_in_a_classic_client():
    proc, port = start_server("--login", "7101", "--tick-interval-ms", "0")
    try:
        # control: a client made with rpyc.classic.connect serves SlaveService to the server
        classic = rpyc.classic.connect("127.0.0.1", port)
        try:
            seen = probe_through_the_server(port, classic._channel.stream.sock.getsockname()[1],
                                            lambda: classic.eval("1"))
        finally:
            classic.close()
        assert seen["eval"] == ("reached", repr(os.getpid())) and seen["getmodule"][0] == "reached", seen
        assert all(outcome == "reached" for outcome, _ in seen.values()), seen

        terminal = RpycTerminal(port=port, timeout_s=10)
        try:
            assert terminal.initialize(login=7101, password="password") is True
            seen = probe_through_the_server(port, terminal._conn._channel.stream.sock.getsockname()[1],
                                            terminal.version)
            assert set(seen) == {"eval", "getmodule", "execute", "namespace", "private", "globals"}, seen
            assert all(outcome == "refused" for outcome, _ in seen.values()), seen
            assert terminal.connected and terminal.account_info().login == 7101  # and the link still works
        finally:
            terminal.close()
    finally:
        stop_server(proc)
