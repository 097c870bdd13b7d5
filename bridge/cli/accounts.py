"""``bridge accounts``: the configured trading accounts, and a live test of one through the daemon.

Accounts are declared in bridge.toml, not in the store: an account on a real
platform needs its credentials or terminal there (an MT5 terminal's rpyc
server, an MT4 EA's socket, a cTrader token), and the daemon connects to them
when it starts. So ``add`` checks the account and prints the TOML to add, and
``remove`` checks that no route uses it and says what to delete; the daemon
takes either at its next start.

A declared account becomes a master at runtime (``add --master``; the store's
``masters`` table): the running daemon watches it at once and copies its deals
from that moment. ``remove --master`` stops that, once no route copies it.
"""

from __future__ import annotations

import json

import click

from bridge.cli.route_edit import config_option, json_option, load_config, route_book


@click.group(name="accounts")
def accounts_group() -> None:
    """The trading accounts of the configured venues: list, test, add, remove.

    \b
    Example:
      bridge accounts list --config bridge.toml
      bridge accounts test --config bridge.toml mt5-live/5001
    """


def _rows(config, book) -> list[dict]:
    from bridge.daemon.route_book import name_of

    uses: dict[str, list[str]] = {}
    for c in book.copies():
        uses.setdefault(name_of(c.follower), []).append(f"copy {c.id}")
    for g in book.mams():
        for account, _ in g.members:
            uses.setdefault(name_of(account), []).append(f"mam {g.id}")
    masters = {name_of(m): source for m, source, _ in book.masters()}
    rows = []
    for venue in config.venues:
        logins = venue.logins()
        if logins is None:  # a remote sim venue: its accounts are the ones the configuration names
            logins = {int(a.rpartition("/")[2]) for a in (*uses, *masters) if a.rpartition("/")[0] == venue.name}
        for login in sorted(logins):
            name = f"{venue.name}/{login}"
            rows.append({"account": name, "venue": venue.name, "platform": venue.platform.value,
                         "master": name in masters, "master_source": masters.get(name),
                         "follows": sorted(uses.get(name, []))})
    return rows


@accounts_group.command(name="list")
@config_option
@json_option
def list_accounts(config_path, as_json) -> None:
    """List the accounts of the configured venues: platform, master or not, the routes each follows in.

    \b
    Example:
      bridge accounts list --config bridge.toml
      bridge accounts list --config bridge.toml --json
    """
    from bridge.cli.render import table

    with route_book(config_path) as (config, book):
        rows = _rows(config, book)
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(table(["account", "platform", "master", "follows in"],
                     [[r["account"], r["platform"], {"config": "yes", "cli": "yes (added)"}.get(r["master_source"], ""),
                       ", ".join(r["follows"]) or "-"]
                      for r in rows]))


@accounts_group.command()
@config_option
@click.argument("account", metavar="VENUE/LOGIN")
@click.option("--timeout", type=click.IntRange(min=1, max=60_000), default=10_000, show_default=True,
              help="Milliseconds to wait for the daemon and the venue.")
@json_option
def test(config_path, account, timeout, as_json) -> None:
    """Ask the running daemon to reach ACCOUNT at its venue: balance, equity, currency, hedging.

    \b
    Example:
      bridge accounts test --config bridge.toml mt5-live/5001
      bridge accounts test --config bridge.toml sim-demo/2001 --json
    """
    from bridge.daemon.control import ask
    from bridge.daemon.route_book import account_of

    config = load_config(config_path)
    login = account_of(config, account)
    name = f"{login.server.name}/{login.number}"
    endpoint = config.control_for("worker")
    answer = ask(endpoint, f"account-test {name}".encode(), timeout, config.curve)
    if answer is None:
        raise click.ClickException(f"no daemon answered on {endpoint} within {timeout} ms: the daemon holds the "
                                   f"venue connections (start it: bridge run --config {config_path})")
    if "error" in answer:
        raise click.ClickException(answer["error"])
    if as_json:
        click.echo(json.dumps(answer))
        return
    kind = "hedging" if answer["hedging"] else "netting"
    click.echo(f"{name}: reachable; balance {answer['balance']} {answer['currency']}, "
               f"equity {answer['equity']}, {kind}")


@accounts_group.command()
@config_option
@click.argument("account", metavar="VENUE/LOGIN")
@click.option("--master", is_flag=True,
              help="Make the account a master now: the running daemon watches it and copies its deals from then "
                   "on (an account already in bridge.toml; otherwise its lines are printed).")
def add(config_path, account, master) -> None:
    """Check a new account and print the bridge.toml lines that add it (the daemon takes them at its start);
    with --master, make a configured account a master at once.

    Accounts live in bridge.toml because they need credentials or a terminal
    the daemon connects to when it starts. A configured account made a master
    with --master is watched by the running daemon at once (no restart); its
    copying starts with its next deal: its history and the positions it holds
    then are not copied.

    \b
    Example:
      bridge accounts add --config bridge.toml mt5-live/5009
      bridge accounts add --config bridge.toml sim-demo/1001 --master
    """
    from bridge.cli.route_edit import tell_daemon
    from bridge.errors import InputError

    config = load_config(config_path)
    name, _, number = account.strip().rpartition("/")
    venue = next((v for v in config.venues if v.name == name), None)
    if venue is None or not number.isdigit() or int(number) <= 0:
        raise InputError(f"account {account!r} must be VENUE/LOGIN of a configured venue "
                         f"({', '.join(v.name for v in config.venues)})")
    logins = venue.logins()
    declared = logins is None or int(number) in logins
    if declared and master:
        with route_book(config_path) as (_, book):
            book.add_master(f"{name}/{number}")
        click.echo(f"{name}/{number}: now a master; its deals are copied from the daemon's first look at it on "
                   f"(history and positions open now are not copied)")
        tell_daemon(config)
        return
    lines = [] if declared else [f"# in the [[venue]] named {name!r}:", *_account_toml(venue, int(number))]
    if master and not any(f"{m.server.name}/{m.number}" == account.strip() for m in config.masters):
        lines += ["[[master]]", f"account = \"{name}/{number}\""]
    if not lines:
        click.echo(f"{name}/{number} is configured already")
        return
    click.echo(f"add to {config_path}, then restart the daemon (systemctl restart copybridge):")
    click.echo("\n".join(lines))


def _account_toml(venue, login: int) -> list[str]:
    platform = venue.platform.value
    head = ["  [[venue.account]]", f"  login = {login}"]
    if platform == "mt5":
        return head + ["  provider = \"mt5linux\"                 # or native (path, server, password_file)",
                       "  host = \"127.0.0.1\"", "  port = 18812"]
    if platform == "mt4":
        return head + ["  endpoint = \"tcp://127.0.0.1:32780\"    # the copybridge EA's command socket"]
    if platform == "ctrader":
        return head + [f"  access_token_file = \"/etc/copybridge/ctrader-{login}-access\"",
                       f"  refresh_token_file = \"/etc/copybridge/ctrader-{login}-refresh\""]
    return head + ["  balance = 10000", "  currency = \"USD\""]


@accounts_group.command()
@config_option
@click.argument("account", metavar="VENUE/LOGIN")
@click.option("--master", is_flag=True,
              help="Only stop ACCOUNT being a master (one added with add --master): the daemon stops watching it.")
def remove(config_path, account, master) -> None:
    """Check that no route uses ACCOUNT and say what to delete from bridge.toml (nothing is written);
    with --master, stop copying a master added at runtime.

    \b
    Example:
      bridge accounts remove --config bridge.toml mt5-live/5009
      bridge accounts remove --config bridge.toml sim-demo/1001 --master
    """
    from bridge.cli.route_edit import tell_daemon
    from bridge.daemon.route_book import account_of, name_of
    from bridge.errors import InputError

    if master:
        with route_book(config_path) as (config, book):
            login = book.remove_master(account)
        click.echo(f"{name_of(login)}: no longer a master; its deals are not copied from now on")
        tell_daemon(config)
        return
    with route_book(config_path) as (config, book):
        login = account_of(config, account)
        uses = [f"copy {c.id}" for c in book.copies() if login in (c.master, c.follower)]
        uses += [f"mam {g.id}" for g in book.mams() if g.master == login or any(a == login for a, _ in g.members)]
        added_master = login in book.store.runtime_masters()
    if uses:
        raise InputError(f"{name_of(login)} is used by {', '.join(uses)}: remove those first "
                         f"(bridge copy unsubscribe, bridge mam remove, or bridge.toml)")
    if added_master:
        raise InputError(f"{name_of(login)} is a master added at runtime: first bridge accounts remove --master "
                         f"{name_of(login)}")
    what = "its [[venue.account]]"
    if login in config.masters:
        what += " and its [[master]] entry"
    click.echo(f"{name_of(login)} is in no route: delete {what} from {config_path}, then restart the daemon")
