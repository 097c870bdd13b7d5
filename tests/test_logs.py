"""Logs of ``bridge run``: ``[log] format = "json"`` writes JSON lines with named fields; the resolved
configuration is logged once at start with its secrets masked.

The daemon runs as a real subprocess. Its configuration holds a cTrader venue
whose client secret and tokens come from 0600 files and an environment
variable (a sim venue holds no secret); the venue's server is a closed port
on 127.0.0.1, so the venue keeps retrying while the test reads the log, and
the secret values must appear nowhere in it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time

import pytest

from bridge.config.secrets import Secret
from bridge.daemon import config as bridge_config
from bridge.daemon.logs import masked
from tests.processes import BRIDGE, ROOT, free_port_endpoint, terminate

CLIENT_SECRET = "cs-9f8e7d6c5b4a"
ACCESS_TOKEN = "at-0123456789abcdef"
REFRESH_TOKEN = "rt-fedcba9876543210"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once this socket is closed


def secret_file(path, value: str):
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def write_config(tmp_path, log_format: str, log_file: str):
    control = free_port_endpoint()
    config = tmp_path / "bridge.toml"
    config.write_text(f"""
[store]
path = "{tmp_path / 'bridge.sqlite'}"
[bus]
deals = "{free_port_endpoint()}"
deals_replay = "{free_port_endpoint()}"
control = "{control}"
[metrics]
listen = ""
[log]
format = "{log_format}"
file = "{log_file}"
[[venue]]
name = "ct"
platform = "ctrader"
host = "127.0.0.1"
port = {closed_port()}
client_id = "app-1"
client_secret_file = "{secret_file(tmp_path / 'client-secret', CLIENT_SECRET)}"
  [[venue.account]]
  login = 7001
  access_token_file = "{secret_file(tmp_path / 'access', ACCESS_TOKEN)}"
  refresh_token_env = "TEST_LOGS_REFRESH"
  [[venue.account]]
  login = 7002
  access_token_file = "{tmp_path / 'access'}"
  refresh_token_env = "TEST_LOGS_REFRESH"
[[master]]
account = "ct/7001"
[[copy]]
master = "ct/7001"
follower = "ct/7002"
""")
    return config


def run_until(config, tmp_path, log_path, condition, timeout_s: float = 30.0) -> str:
    """``bridge run`` until ``condition(log text)`` holds, then SIGTERM; returns the log."""
    env = {**os.environ, "TEST_LOGS_REFRESH": REFRESH_TOKEN}
    with open(tmp_path / "stderr.log", "w") as err:
        process = subprocess.Popen([BRIDGE, "run", "--config", str(config)], stdout=err, stderr=err, cwd=ROOT,
                                   env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            text = log_path.read_text() if log_path.exists() else ""
            if condition(text):
                break
            assert process.poll() is None, f"bridge run exited: {(tmp_path / 'stderr.log').read_text()}"
            assert time.monotonic() < deadline, f"timed out; the log so far:\n{text}"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        terminate(process)
    return log_path.read_text()


def test_json_lines_with_named_fields_and_the_configuration_masked(tmp_path):
    log_path = tmp_path / "logs" / "bridge.jsonl"
    config = write_config(tmp_path, "json", str(log_path))
    text = run_until(config, tmp_path, log_path, lambda t: "answering `bridge status`" in t and "worker:" in t)
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["time"].endswith("+00:00") and line["level"] in ("debug", "info", "warning", "error", "critical")
    configs = [line for line in lines if line.get("event") == "config"]
    assert len(configs) == 1, "the configuration is logged once"
    resolved = configs[0]
    assert resolved["logger"] == "bridge.config" and resolved["message"] == f"resolved configuration from {config}"
    (venue,) = resolved["config"]["venues"]
    ctrader = venue["ctrader"]
    assert ctrader["client_secret"] == f"*** (file:{tmp_path / 'client-secret'})"
    assert ctrader["accounts"][0]["access_token"].startswith("*** (file:")
    assert ctrader["accounts"][0]["refresh_token"] == "*** (env:TEST_LOGS_REFRESH)"
    assert resolved["config"]["masters"] == ["ctrader/ct/7001"]
    assert resolved["config"]["metrics_listen"] == "" and resolved["config"]["log_format"] == "json"
    for value in (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN):
        assert value not in text
    assert not (tmp_path / "stderr.log").read_text(), "with [log] file, nothing goes to stderr"
    loggers = {line["logger"] for line in lines}
    assert {"bridge.config", "bridge.control", "bridge.daemon"} <= loggers
    assert lines.index(resolved) == 0, "the configuration comes first"


def test_text_format_is_unchanged_and_also_masks(tmp_path):
    log_path = tmp_path / "bridge.log"
    config = write_config(tmp_path, "text", str(log_path))
    text = run_until(config, tmp_path, log_path, lambda t: "answering `bridge status`" in t)
    first = text.splitlines()[0]
    assert " INFO bridge.config: resolved configuration from " in first
    resolved = json.loads(first.split(": ", 1)[1].split(": ", 1)[1])
    assert resolved["venues"][0]["ctrader"]["client_secret"].startswith("*** (file:")
    for value in (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN):
        assert value not in text
    assert any(" INFO bridge.control: control: answering" in line for line in text.splitlines())


def test_a_bad_log_table_is_one_line(tmp_path):
    config = tmp_path / "bridge.toml"
    config.write_text("[log]\nformat = \"xml\"\n[[venue]]\nname = \"v\"\nplatform = \"sim\"\n")
    result = subprocess.run([BRIDGE, "run", "--config", str(config)], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"bridge: error: {config}:2: [log]: format 'xml' is not one of text, json"]


def test_masked_hides_secrets_by_type_and_by_name():
    assert masked(Secret("hunter2", "env:PW")) == "*** (env:PW)"
    data = masked({"password": "plain-in-code", "api_token": "x", "name": "ok", "ca": b"12345",
                   "nested": [{"client_secret": "y"}]})
    assert data == {"password": "***", "api_token": "***", "name": "ok", "ca": "<5 bytes>",
                    "nested": [{"client_secret": "***"}]}
    shipped = masked(bridge_config.load(ROOT / "config" / "bridge.toml"))
    assert json.dumps(shipped)  # plain JSON data all through


def test_stdlib_records_become_json_events_with_extra_fields():
    from io import StringIO

    from twisted.logger import LogPublisher

    import bridge.daemon.logs as logs

    out = StringIO()
    publisher = LogPublisher(logs.JsonLines(out))
    handler = logs.ToTwisted()
    original, logs.globalLogPublisher = logs.globalLogPublisher, publisher
    try:
        record = logging.LogRecord("bridge.worker", logging.WARNING, __file__, 1, "deal %s {odd} stuck", (7,), None)
        record.deal_seq = 7
        handler.emit(record)
    finally:
        logs.globalLogPublisher = original
    line = json.loads(out.getvalue())
    assert line["level"] == "warning" and line["logger"] == "bridge.worker"
    assert line["message"] == "deal 7 {odd} stuck" and line["deal_seq"] == 7


@pytest.fixture(autouse=True)
def _no_env_leak(monkeypatch):
    monkeypatch.delenv("TEST_LOGS_REFRESH", raising=False)
