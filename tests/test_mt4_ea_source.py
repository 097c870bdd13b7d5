"""What can be checked of the MQL4 EA (connectors/mt4/CopyBridgeEA.mq4 and Include/CopyBridge/*.mqh) without
MetaEditor: it names every command, event, topic and error of connectors/mt4/protocol.py, refuses the
simulator-only MANUAL_* commands, its inputs have the documented defaults, its brackets balance outside strings
and comments, every file is ``#property strict``, its includes exist, numbers go through one DoubleToString, and
CURVE (Curve.mqh) uses only mql-zmq methods that exist, with the ZAP handler bound before the sockets.
None of this compiles the EA (see connectors/mt4/EA.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors.mt4 import protocol as P

MT4 = Path(__file__).resolve().parent.parent / "connectors" / "mt4"
EA = MT4 / "CopyBridgeEA.mq4"
INCLUDES = sorted((MT4 / "Include" / "CopyBridge").glob("*.mqh"))
SOURCES = [EA, *INCLUDES]


def lex(text: str) -> tuple[str, list[str]]:
    """The code with comments removed and string/char literals blanked, and the string literals' contents."""
    code: list[str] = []
    strings: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            assert end >= 0, "unterminated /* comment"
            i = end + 2
        elif c in "\"'":
            j = i + 1
            chars = []
            while j < n and text[j] != c:
                assert text[j] != "\n", f"unterminated literal at offset {i}"
                if text[j] == "\\":
                    chars.append(text[j:j + 2])
                    j += 2
                else:
                    chars.append(text[j])
                    j += 1
            assert j < n, f"unterminated literal at offset {i}"
            if c == '"':
                strings.append("".join(chars))
            code.append(c + c)
            i = j + 1
        else:
            code.append(c)
            i += 1
    return "".join(code), strings


@pytest.fixture(scope="module")
def lexed() -> dict[Path, tuple[str, list[str]]]:
    assert EA.exists() and INCLUDES, "the EA and its includes"
    return {path: lex(path.read_text(encoding="utf-8")) for path in SOURCES}


@pytest.fixture(scope="module")
def code(lexed) -> str:
    return "\n".join(c for c, _ in lexed.values())


@pytest.fixture(scope="module")
def literals(lexed) -> set[str]:
    return {s for _, strings in lexed.values() for s in strings}


def test_every_command_is_handled(literals):
    for cmd in sorted(P.TRADING | P.QUERIES):
        assert cmd in literals, f"command {cmd} is not handled by the EA"


def test_manual_commands_are_refused(literals):
    # the real EA answers MANUAL_* with unknown-command: it must not handle them
    for cmd in sorted(P.MANUAL):
        assert cmd not in literals, f"{cmd} is the simulator's; the EA must refuse it"


def test_every_event_topic_and_protocol_error_is_written(literals):
    for name in (*P.EVENTS, P.TOPIC_EVENT.decode(), P.TOPIC_HEARTBEAT.decode(),
                 P.BAD_FRAME, P.UNKNOWN_COMMAND, P.UNKNOWN_SYMBOL, P.NOT_FOUND):
        assert name in literals, f"{name!r} does not appear in the EA"


def test_every_mql4_error_code_has_its_text(code, literals):
    for number, text in P.ERROR_TEXT.items():
        assert re.search(rf"\bcase\s+{number}\s*:", code), f"error {number} has no case in CbErrorText"
        assert text in literals, f"the text of error {number} ({text!r}) is missing"


def test_busy_codes_are_retried(code):
    busy = re.search(r"bool\s+CbIsBusy\([^)]*\)\s*\{(.*?)\}", code, re.S)
    assert busy, "CbIsBusy"
    numbers = {int(n) for n in re.findall(r"\b\d+\b", busy.group(1))}
    assert {P.ERR_SERVER_BUSY, P.ERR_BROKER_BUSY, P.ERR_TRADE_CONTEXT_BUSY} <= numbers


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_brackets_balance_outside_strings_and_comments(path, lexed):
    source, _ = lexed[path]
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    for lineno, line in enumerate(source.splitlines(), 1):
        for c in line:
            if c in "([{":
                stack.append((c, lineno))
            elif c in pairs:
                assert stack, f"{path.name}:{lineno}: {c!r} closes nothing"
                opened, at = stack.pop()
                assert opened == pairs[c], f"{path.name}:{lineno}: {c!r} closes {opened!r} of line {at}"
    assert not stack, f"{path.name}: unclosed {stack[-1][0]!r} from line {stack[-1][1]}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_property_strict(path, lexed):
    assert re.search(r"^#property\s+strict\s*$", lexed[path][0], re.M), f"{path.name} lacks #property strict"


def test_inputs_have_the_documented_defaults():
    text = EA.read_text(encoding="utf-8")
    inputs = {name: (kind, value.strip()) for kind, name, value in
              re.findall(r"^input\s+(\w+)\s+(\w+)\s*=\s*([^;]+);", text, re.M)}
    assert inputs == {
        "CommandEndpoint": ("string", f'"tcp://127.0.0.1:{P.COMMAND_PORT}"'),  # off loopback only with CURVE
        "EventEndpoint": ("string", f'"tcp://127.0.0.1:{P.EVENT_PORT}"'),
        "TimerMs": ("int", str(P.TIMER_MS)),
        "HeartbeatMs": ("int", str(P.HEARTBEAT_MS)),
        "MaxCommandsPerTick": ("int", "20"),
        "BusyRetryMs": ("int", str(P.BUSY_RETRY_MS)),
        "JournalFile": ("string", '"copybridge-<login>.journal"'),
        "CurveSecretFile": ("string", '""'),  # a file in MQL4/Files: the key is never an input's value
        "CurveClientsFile": ("string", '""'),
    }


def test_memory_sizes_match_the_protocol(code):
    defines = dict(re.findall(r"^#define\s+(\w+)\s+(\S+)", code, re.M))
    assert int(defines["CB_JOURNAL_MEMORY"]) == P.JOURNAL_MEMORY
    assert int(defines["CB_EVENT_RING"]) == P.EVENT_RING
    assert int(defines["CB_PROTOCOL_VERSION"]) == P.VERSION
    assert int(defines["CB_OP_BALANCE"]) == P.OP_BALANCE


def test_includes_exist():
    for path in SOURCES:
        for kind, name in re.findall(r'^#include\s+([<"])([^>"]+)[>"]', path.read_text(encoding="utf-8"), re.M):
            if name.startswith("Zmq/"):
                continue  # mql-zmq, installed separately
            target = (MT4 / "Include" / name) if kind == "<" else (path.parent / name)
            assert target.exists(), f"{path.name} includes {name}, which is not in connectors/mt4/Include"


def test_numbers_are_written_in_one_place(lexed):
    # every number goes through CbNumber (DoubleToString with 0..8 decimals: never scientific notation)
    for path, (source, _) in lexed.items():
        calls = source.count("DoubleToString(")
        assert calls == (1 if path.name == "Json.mqh" else 0), f"{path.name}: DoubleToString outside CbNumber"
        assert not re.search(r"%[-+ #0-9.]*[eEgG]", "".join(lexed[path][1])), f"{path.name}: %e/%g format"


def test_the_journal_line_is_written_before_the_reply(code):
    trade = re.search(r"string\s+Trade\(CbCommand[^)]*\)\s*\{(.*?)\n\s*\}\n", code, re.S)
    assert trade, "the EA's Trade()"
    body = trade.group(1)
    assert body.index("g_journal.Get(") < body.index("CmdOpen(")
    assert body.index("g_journal.Record(") < body.rindex("return(reply)")


# -- CURVE (Include/CopyBridge/Curve.mqh) ------------------------------------------------------------------

CURVE = MT4 / "Include" / "CopyBridge" / "Curve.mqh"
#: the mql-zmq calls Curve.mqh makes, as dingmaotu/mql-zmq declares them (Include/Zmq/SocketOptions.mqh:
#: SOCKOPT_SET_BOOL(CurveServer), SOCKOPT_CURVE_KEY(Secret) -> setCurveSecretKey(string),
#: SOCKOPT_NTSTR(ZapDomain); Z85.mqh: static derivePublic(string), encode(string&,const uchar&[]);
#: Zmq.mqh: Zmq::hasCurve(); Socket.mqh: recv(ZmqMsg&,bool), send/sendMore(ZmqMsg&,bool), bind, setLinger)
MQL_ZMQ_CALLS = {".setCurveServer(", ".setCurveSecretKey(", ".setZapDomain(", "Z85::derivePublic(",
                 "Z85::encode(", "Zmq::hasCurve(", ".sendMore(", ".recv(", ".bind("}
#: names mql-zmq does not have (guesses a reader might make): none may appear
NOT_MQL_ZMQ = ("setCurveServerKey(true", "setCurveSecret(", "setZAPDomain(", "curveKeypair(", "setCurveKey(",
               "Z85::decodeKey(", "zmq_curve_keypair(")


def function(code: str, signature: str) -> str:
    found = re.search(signature + r"[^{]*\{(.*?)\n  \}\n", code, re.S)
    assert found, signature
    return found.group(1)


def test_curve_uses_only_the_mql_zmq_api_that_exists(lexed):
    source, _ = lexed[CURVE]
    for call in sorted(MQL_ZMQ_CALLS):
        assert call in source, f"Curve.mqh does not call {call}"
    everything = "\n".join(c for c, _ in lexed.values())
    for wrong in NOT_MQL_ZMQ:
        assert wrong not in everything, wrong


def test_curve_key_files_and_the_zap_protocol(lexed):
    import zmq.utils.z85

    source, strings = lexed[CURVE]
    assert zmq.utils.z85.Z85CHARS.decode() in strings, "the Z85 alphabet a key is checked against"
    assert {"inproc://zeromq.zap.01", "1.0", "CURVE", "200", "400", "copybridge"} <= set(strings)
    reply = re.search(r"if\(!SendZap\(CB_ZAP_VERSION,true\)(.*?)\)\n", source, re.S)
    assert reply and reply.group(0).count("SendZap") == 6, "a ZAP reply: version, id, status, text, user, metadata"
    assert re.search(r"#define\s+CB_ZAP_DOMAIN\s+\"\"", source), "the bus's ZAP domain"
    assert re.search(r"#define\s+CB_CURVE_KEY_LEN\s+40\b", source)


def test_curve_is_set_up_in_order_and_its_handler_served_and_closed(lexed):
    code = lexed[EA][0]
    init = function(code, r"int\s+OnInit\(\)")
    order = [init.index(s) for s in ("g_curve.Load(", "g_curve.StartZap(", "new Socket(g_context,ZMQ_ROUTER)",
                                      "g_curve.Serve(g_router)", "g_curve.Serve(g_pub)", "BindRetry(g_router")]
    assert order == sorted(order), "keys read, ZAP handler bound, sockets made CURVE servers, then bound"
    assert "g_curve.PollZap()" in function(code, r"void\s+OnTimer\(\)")
    assert "g_curve.Close()" in function(code, r"void\s+CloseSockets\(\)")


def test_a_non_loopback_bind_without_curve_is_refused_by_the_ea():
    """The EA's rule is the bridge's (bridge.bus.curve.needs_curve): tcp:// off 127.0.0.0/8, ::1, localhost."""
    text = CURVE.read_text(encoding="utf-8")
    remote = re.search(r"static bool\s+Remote\(const string endpoint\)\s*\{(.*?)\n     \}\n", text, re.S).group(1)
    assert '"tcp://"' in remote and '"localhost"' in remote and '"::1"' in remote and '"127."' in remote
    load = re.search(r"bool\s+Load\(.*?\n     \}\n", text, re.S).group(0)
    no_key = load[load.index('if(secretFile=="")'):load.index("Zmq::hasCurve()")]
    assert "Remote(command) || Remote(events)" in no_key and "return(false)" in no_key
