"""What can be checked of the MQL4 EA (connectors/mt4/CopyBridgeEA.mq4 and Include/CopyBridge/*.mqh) without
MetaEditor: it names every command, event, topic and error of connectors/mt4/protocol.py, refuses the
simulator-only MANUAL_* commands, its inputs have the documented defaults, its brackets balance outside strings
and comments, every file is ``#property strict``, its includes exist, numbers go through one DoubleToString.
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
        "CommandEndpoint": ("string", f'"tcp://*:{P.COMMAND_PORT}"'),
        "EventEndpoint": ("string", f'"tcp://*:{P.EVENT_PORT}"'),
        "TimerMs": ("int", str(P.TIMER_MS)),
        "HeartbeatMs": ("int", str(P.HEARTBEAT_MS)),
        "MaxCommandsPerTick": ("int", "20"),
        "BusyRetryMs": ("int", str(P.BUSY_RETRY_MS)),
        "JournalFile": ("string", '"copybridge-<login>.journal"'),
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
