"""What ``bridge copy``, ``bridge mam`` and ``bridge accounts`` share: the configuration, the route book
in the store, and telling the running daemon that the routes changed."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

#: how long a command waits for the running daemon to answer
ASK_TIMEOUT_MS = 3000

config_option = click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
    help="The bridge configuration (its venues, [store] and [bus] control).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def load_config(config_path: Path):
    from bridge.daemon import config as bridge_config

    return bridge_config.load(config_path)


@contextmanager
def open_store(config, *, existing: bool = False) -> Iterator:
    """The configuration's store, closed after; a store that cannot be opened is one line (``existing``:
    one that does not exist yet too, rather than creating it)."""
    from bridge.errors import InputError
    from bridge.store import Store

    if existing and not config.store_path.exists():
        raise InputError(f"store {config.store_path}: no such file (the daemon creates it at its first start)")
    try:
        store = Store.open(config.store_path)
    except Exception as exc:  # sqlite3 errors: a directory missing, no permission, not a database
        raise InputError(f"store {config.store_path}: cannot open ({exc})") from None
    try:
        yield store
    finally:
        store.close()


@contextmanager
def route_book(config_path: Path) -> Iterator:
    """(configuration, RouteBook on its store); the store is closed after."""
    from bridge.daemon.route_book import RouteBook

    config = load_config(config_path)
    with open_store(config) as store:
        yield config, RouteBook(config, store)


close_option = click.option(
    "--close-positions", "close_positions", is_flag=True,
    help="Also close, at market, every follower position copied from the master's positions (each close "
         "exactly once; sent by the running daemon now, or when it starts; a copy still on its way is closed "
         "once it fills).")


def closes_text(closes, account: str) -> str:
    """What ``--close-positions`` planned, in words: how many positions of which account."""
    if not closes:
        return f"{account} has no copied position open: nothing to close"
    what = ", ".join(f"{o.symbol} {o.side} #{o.position_id}" + (" (this master's share)"
                                                              if o.action == "partial-close" else "")
                     for o in closes)
    return f"closing {len(closes)} copied position(s) of {account} at market: {what}"


def close_dicts(closes) -> list[dict]:
    return [{"key": o.key, "account": o.account, "position_id": o.position_id, "symbol": o.symbol, "side": o.side,
             "volume": o.volume, "action": o.action} for o in closes]


def tell_daemon(config, closing: int = 0, *, quiet: bool = False) -> str:
    """Ask the running daemon to read its routes again; say what happened, in one line (unless ``quiet``).
    ``closing``: how many closes the change planned. Returns ``applied``, ``not-running`` or ``refused``."""
    from bridge.daemon.control import ask

    endpoint = config.control_for("worker")
    listening = not endpoint.startswith("ipc://") or Path(endpoint[len("ipc://"):]).exists()
    answer = ask(endpoint, b"reload-routes", ASK_TIMEOUT_MS, config.curve) if listening else None
    if answer is None:
        outcome = "not-running"
        line = f"no daemon answered on {endpoint}: the change applies when the daemon starts" + \
            (f" (and sends the {closing} close(s) then)" if closing else "")
    elif "error" in answer:
        if not quiet:
            click.echo(f"the daemon on {endpoint} did not take the change: {answer['error']}", err=True)
        return "refused"
    else:
        outcome = "applied"
        routes = answer["routes"]
        line = f"the running daemon copies along it now ({routes['copy']} copy route(s), {routes['mam']} MAM " \
               f"group(s))" + (f" and sends the {closing} close(s) now" if closing else "")
    if not quiet:
        click.echo(line)
    return outcome
