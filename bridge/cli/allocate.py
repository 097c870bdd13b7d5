"""``bridge allocate``: what-if previews of a MAM split or a copy fan-out."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from allocation.copy.settings import CloseOnly, SizingMode, TinyTrades
from allocation.mam import Leftover, Method
from bridge.cli.render import allocation_table
from bridge.domain.deal import Side
from bridge.whatif import copy as copy_whatif
from bridge.whatif import mam as mam_whatif


class DecimalType(click.ParamType):
    """An exact decimal from the command line; ``positive`` refuses zero and below."""

    name = "DECIMAL"

    def __init__(self, positive: bool = False, non_negative: bool = False) -> None:
        self.positive = positive
        self.non_negative = non_negative

    def convert(self, value, param, ctx):
        if isinstance(value, Decimal):
            return value
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not a number", param, ctx)
        if not result.is_finite():
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.positive and result <= 0:
            self.fail(f"must be positive, got {value}", param, ctx)
        if self.non_negative and result < 0:
            self.fail(f"must not be negative, got {value}", param, ctx)
        return result


POSITIVE = DecimalType(positive=True)
NON_NEGATIVE = DecimalType(non_negative=True)
ANY_DECIMAL = DecimalType()
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _choice(enum_cls) -> click.Choice:
    return click.Choice([m.value for m in enum_cls])


def _symbol_options(f):
    for opt in reversed([
        click.option("--symbol", help="Symbol name [default: EURUSD]."),
        click.option("--contract-size", type=POSITIVE, help="Units of base asset per lot [default: 100000]."),
        click.option("--step", type=POSITIVE, help="Volume step in lots [default: 0.01]."),
        click.option("--min", "min_", type=POSITIVE, help="Minimum volume in lots [default: 0.01]."),
        click.option("--max", "max_", type=POSITIVE, help="Maximum volume in lots [default: 100]."),
    ]):
        f = opt(f)
    return f


def _symbol(symbol, contract_size, step, min_, max_) -> dict:
    return {"name": symbol, "contract_size": contract_size, "step": step, "min": min_, "max": max_}


def _emit(result, as_json: bool, title: str) -> None:
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    else:
        click.echo(allocation_table(result, title))


@click.group()
def allocate() -> None:
    """Preview how a master deal would be allocated (no orders are sent).

    \b
    Example:
      bridge allocate mam --method equity --volume 0.10 --account A=4500 --account B=3500
      bridge allocate copy --mode balance --volume 2.00 --master-balance 50000 --follower F1=8000
    """


@allocate.command()
@click.option("--group", "group_file", type=FILE, help="MAM group file (TOML); options override it.")
@click.option("--method", type=_choice(Method), help="Allocation method.")
@click.option("--volume", type=POSITIVE, help="Block volume in lots.")
@click.option("--side", type=_choice(Side), help="Block side [default: buy].")
@_symbol_options
@click.option("--account", "accounts", multiple=True, metavar="ID=VALUE",
              help="A sub-account: balance/equity for those methods, percentage for percent, "
                   "multiplier for lot, lots for fixed; equal ignores VALUE. Repeatable.")
@click.option("--equity", "equities", multiple=True, metavar="ID=EQUITY",
              help="An account's equity, for the tie-breaks when VALUE is not equity. Repeatable.")
@click.option("--leftover", type=_choice(Leftover), help="Who gets the leftover steps [default: largest-remainder].")
@click.option("--force-minimum/--skip-below-minimum", default=None,
              help="Force a share below the minimum up to it while the block has room [default: skip].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def mam(group_file, method, volume, side, symbol, contract_size, step, min_, max_, accounts, equities,
        leftover, force_minimum, as_json) -> None:
    """Split a MAM block across sub-accounts by an allocation method.

    Shares are floored to the step; the leftover steps go out one at a time by the
    leftover policy; the sum never exceeds the block. Every leg whose volume differs
    from its ideal share says why.

    \b
    Example:
      bridge allocate mam --method equity --volume 0.10 --symbol EURUSD --step 0.01 \\
        --min 0.01 --max 100 --account A=4500 --account B=3500 --account C=2000
      bridge allocate mam --group config/mam-group.toml --json
    """
    request = mam_whatif.MamRequest(
        group_file=group_file,
        method=Method(method) if method else None,
        leftover=Leftover(leftover) if leftover else None,
        force_minimum=force_minimum,
        volume=volume,
        side=Side(side) if side else None,
        symbol=_symbol(symbol, contract_size, step, min_, max_),
        accounts=accounts,
        equities=equities,
    )
    result = mam_whatif.run(request)
    method_name = method or "group file method"
    _emit(result, as_json, f"MAM {result.block_spec.symbol} {result.side} by {method_name}")


@allocate.command()
@click.option("--settings", "settings_file", type=FILE,
              help="Settings file (TOML): master, trade, strategy, subscription and followers.")
@click.option("--volume", type=POSITIVE, help="Master deal volume in lots.")
@click.option("--side", type=_choice(Side), help="Master deal side [default: buy].")
@click.option("--price", type=POSITIVE, help="Master entry price (risk sizing, max trade risk).")
@click.option("--sl", type=POSITIVE, help="Master stop-loss price.")
@click.option("--tp", type=POSITIVE, help="Master take-profit price.")
@click.option("--signal-age", type=click.IntRange(min=0), help="Seconds between the master deal and the copy.")
@click.option("--master-balance", type=ANY_DECIMAL, help="Master account balance.")
@click.option("--master-equity", type=ANY_DECIMAL, help="Master account equity [default: its balance].")
@_symbol_options
@click.option("--follower-contract-size", type=POSITIVE, help="Followers' contract size [default: master's].")
@click.option("--follower-step", type=POSITIVE, help="Followers' volume step in lots [default: master's].")
@click.option("--follower-min", type=POSITIVE, help="Followers' minimum volume [default: master's].")
@click.option("--follower-max", type=POSITIVE, help="Followers' maximum volume [default: master's].")
@click.option("--follower", "followers", multiple=True, metavar="ID=BALANCE[:EQUITY]",
              help="A follower account. Repeatable.")
@click.option("--quote-rate", type=POSITIVE,
              help="Quote currency -> follower account currency rate, for risk [default: 1].")
# copy settings: one level at the end of every follower's chain
@click.option("--mode", type=_choice(SizingMode), help="Sizing mode [default: balance].")
@click.option("--multiplier", type=NON_NEGATIVE, help="Scales the computed volume.")
@click.option("--fixed-lots", type=NON_NEGATIVE, help="Lots per trade for --mode fixed.")
@click.option("--risk-fraction", type=NON_NEGATIVE, help="Fraction of balance risked at the SL, --mode risk.")
@click.option("--reverse/--no-reverse", default=None, help="Copy in reverse: buy<->sell, SL<->TP.")
@click.option("--map", "maps", multiple=True, metavar="SRC=DST", help="Rename a symbol. Repeatable.")
@click.option("--include", multiple=True, metavar="SYMBOL", help="Copy only these master symbols (patterns ok).")
@click.option("--exclude", multiple=True, metavar="SYMBOL", help="Never copy these master symbols (patterns ok).")
@click.option("--sides", type=click.Choice(["both", "buy", "sell"]), help="Sides the follower may trade.")
@click.option("--min-lots", type=NON_NEGATIVE, help="Skip trades below this volume (follower lots).")
@click.option("--max-lots", type=NON_NEGATIVE, help="Clip trades above this volume (follower lots).")
@click.option("--tiny", type=_choice(TinyTrades), help="Below the symbol minimum: skip or force [default: skip].")
@click.option("--max-risk-coefficient", type=NON_NEGATIVE, help="Forcing limit: min / computed [default: 5].")
@click.option("--max-trade-risk", type=NON_NEGATIVE, help="Cut volume so the SL loss is at most this fraction.")
@click.option("--copy-sl/--no-copy-sl", default=None, help="Copy the stop-loss [default: on].")
@click.option("--copy-tp/--no-copy-tp", default=None, help="Copy the take-profit [default: on].")
@click.option("--skip-pending/--copy-pending", default=None, help="Skip pending orders [default: copy].")
@click.option("--close-only", type=_choice(CloseOnly), help="Close-only mode.")
@click.option("--lifetime", type=click.IntRange(min=1), help="Seconds an open may still be copied.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def copy(settings_file, volume, side, price, sl, tp, signal_age, master_balance, master_equity,
         symbol, contract_size, step, min_, max_, follower_contract_size, follower_step, follower_min,
         follower_max, followers, quote_rate, as_json, maps, sides, lifetime, **settings) -> None:
    """Size one master open for each follower with its exact copy settings.

    Settings chain: provider strategy -> subscription -> follower (from --settings)
    -> these options (the most specific level). Multipliers multiply, reverse
    XORs, filters all apply, min/max combine; see the README for every rule.

    \b
    Example:
      bridge allocate copy --mode balance --volume 2.00 --master-balance 50000 \\
        --follower F1=8000 --multiplier 1.5 --reverse --map EURUSD=EURUSD.m
      bridge allocate copy --settings config/copy-settings.toml --json
    """
    options = {k: v for k, v in settings.items() if v not in (None, ())}
    for key in ("include", "exclude"):
        if key in options:
            options[key] = list(options[key])
    if maps:
        options["symbol_map"] = _parse_maps(maps)
    if sides:
        options["sides"] = sides
    if lifetime:
        options["signal_lifetime"] = lifetime
    request = copy_whatif.CopyRequest(
        settings_file=settings_file,
        volume=volume,
        side=Side(side) if side else None,
        price=price, sl=sl, tp=tp,
        age_seconds=signal_age,
        master_balance=master_balance,
        master_equity=master_equity,
        symbol=_symbol(symbol, contract_size, step, min_, max_),
        follower_symbol={"contract_size": follower_contract_size, "step": follower_step,
                         "min": follower_min, "max": follower_max},
        followers=followers,
        quote_rate=quote_rate,
        settings=options,
    )
    result = copy_whatif.run(request)
    _emit(result, as_json, f"copy {result.block_spec.symbol} {result.side}")


def _parse_maps(maps: tuple[str, ...]) -> dict:
    out: dict[str, str] = {}
    for text in maps:
        source, sep, target = text.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise click.BadParameter(f"{text!r}: expected SRC=DST, e.g. EURUSD=EURUSD.m", param_hint="--map")
        out[source.strip()] = target.strip()
    return out
