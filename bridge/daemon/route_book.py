"""The routes the daemon copies along: bridge.toml's, plus the ones the CLI adds at runtime.

bridge.toml's ``[[copy]]`` and ``[[mam]]`` are the static base (source
``config``): the CLI lists them and refuses to edit them (edit the file). The
CLI's routes (source ``cli``) live in the store's registry tables (migration
0001): a copy subscription is a ``subscriptions`` row under a ``strategies``
row named by its master; a MAM group is a ``mam_groups`` row with its
``mam_members``. The daemon's routes are the config's plus the store's active
subscriptions and its groups that have members (:func:`daemon_routes`).

Settings are kept as the mapping the operator gave (a subscription's sizing
terms in ``settings``, its risk limits in ``follower_settings``, so that
``set-risk`` can raise a limit as well as lower it) and parsed with the same
function the configuration uses (:func:`allocation.copy.settings_from_mapping`).

Each edit is one transaction, checked first: accounts must be configured (a
master must be a ``[[master]]``: only those are watched), a follower follows a
master once (by copy or MAM: its orders' keys are per master deal and
follower), never itself. A bad input is an :class:`~bridge.errors.InputError`
and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from allocation.copy import CopySettings, Effective, resolve, settings_from_mapping
from allocation.errors import AllocationError
from allocation.mam import Leftover, MamGroup, Method
from bridge.daemon.config import BridgeConfig
from bridge.domain.ids import Login
from bridge.errors import InputError
from bridge.store import AccountOrderRow, MamGroupRow, MamMemberRow, Store, StrategyRow, SubscriptionRow
from bridge.worker.planning import CopyRoute, MamRoute
from bridge.worker.routes import Routes

#: settings ``set-risk`` changes (kept in a subscription's ``follower_settings``)
RISK_KEYS = ("max_lots", "min_lots", "max_trade_risk", "max_risk_coefficient", "max_slippage_points")
PAUSED = "paused by the operator"


def name_of(login: Login) -> str:
    """``VENUE/LOGIN``, as bridge.toml and the CLI write an account."""
    return f"{login.server.name}/{login.number}"


def account_of(config: BridgeConfig, text: str, what: str = "account") -> Login:
    """``VENUE/LOGIN`` of a configured venue (and, where the venue lists its accounts, one of them)."""
    name, _, number = str(text).strip().rpartition("/")
    if not name or not number.isdigit() or int(number) <= 0:
        raise InputError(f"{what} {text!r} must be VENUE/LOGIN, e.g. sim-demo/1000")
    venue = next((v for v in config.venues if v.name == name), None)
    if venue is None:
        raise InputError(f"{what} {text!r}: no venue named {name!r} in the configuration "
                         f"(venues: {', '.join(v.name for v in config.venues)})")
    logins = venue.logins()
    if logins is not None and int(number) not in logins:
        raise InputError(f"{what} {text!r}: venue {name!r} has no account {number} (accounts are declared in "
                         f"bridge.toml's [[venue.account]])")
    return Login(venue.server, int(number))


def parse_settings(mapping: dict, where: str) -> CopySettings:
    try:
        return settings_from_mapping(mapping, where)
    except AllocationError as exc:
        raise InputError(str(exc)) from None


def split_risk(mapping: dict) -> tuple[dict, dict]:
    """(sizing terms, risk limits) of a settings mapping."""
    return ({k: v for k, v in mapping.items() if k not in RISK_KEYS},
            {k: v for k, v in mapping.items() if k in RISK_KEYS})


def effective(row: SubscriptionRow) -> Effective:
    return resolve(None, parse_settings(row.settings, f"subscription {row.id} settings"),
                   parse_settings(row.follower_settings, f"subscription {row.id} risk"))


@dataclass(frozen=True)
class CopyEntry:
    """One copy route as ``bridge copy list`` shows it."""

    id: str
    source: str  # "config" | "cli"
    master: Login
    follower: Login
    active: bool
    settings: dict
    risk: dict
    stopped_out: str | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "master": name_of(self.master),
                "follower": name_of(self.follower), "active": self.active, "settings": _plain(self.settings),
                "risk": _plain(self.risk), "stopped_out": self.stopped_out}


@dataclass(frozen=True)
class MamEntry:
    id: str
    source: str
    master: Login
    method: str
    leftover: str
    force_minimum: bool
    members: tuple[tuple[Login, Decimal | None], ...]

    def as_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "master": name_of(self.master), "method": self.method,
                "leftover": self.leftover, "force_minimum": self.force_minimum,
                "members": [{"account": name_of(a), "setting": None if s is None else str(s)}
                            for a, s in self.members]}


def _plain(mapping: dict) -> dict:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in mapping.items()}


def daemon_routes(config: BridgeConfig, store: Store) -> Routes:
    """The config's routes, then the store's active subscriptions and its groups with members."""
    routes = Routes()
    for c in config.copies:
        routes.copy.setdefault(c.master, []).append(CopyRoute(c.follower, c.settings))
    for g in config.mams:
        routes.mam.setdefault(g.master, []).append(MamRoute(g.id, g.group, g.members))
    book = RouteBook(config, store)
    for entry in book.cli_copies():
        if entry.active:
            row = store.subscription(entry.id)
            routes.copy.setdefault(entry.master, []).append(CopyRoute(entry.follower, effective(row)))
    for g in book.cli_mams():
        if g.members:
            group = MamGroup(Method(g.method), Leftover(g.leftover), g.force_minimum)
            routes.mam.setdefault(g.master, []).append(
                MamRoute(g.id, group, tuple((a, s if s is not None else Decimal(0)) for a, s in g.members)))
    return routes


class RouteBook:
    """Reads and edits the CLI's routes; every edit is checked, then written in one transaction."""

    def __init__(self, config: BridgeConfig, store: Store) -> None:
        self.config, self.store = config, store

    # -- reading --------------------------------------------------------------
    def config_copies(self) -> list[CopyEntry]:
        return [CopyEntry(f"config-{n}", "config", c.master, c.follower, True, {}, {})
                for n, c in enumerate(self.config.copies, 1)]

    def cli_copies(self) -> list[CopyEntry]:
        masters = {s.id: s.master for s in self.store.strategies()}
        return [CopyEntry(r.id, "cli", masters[r.strategy_id], r.follower, r.active, r.settings,
                          r.follower_settings, r.stopped_out) for r in self.store.subscriptions()]

    def copies(self) -> list[CopyEntry]:
        return self.config_copies() + self.cli_copies()

    def config_mams(self) -> list[MamEntry]:
        return [MamEntry(g.id, "config", g.master, g.group.method.value, g.group.leftover.value,
                         g.group.force_minimum, g.members) for g in self.config.mams]

    def cli_mams(self) -> list[MamEntry]:
        out = []
        for row in self.store.db.query("SELECT id FROM mam_groups ORDER BY id"):
            g = self.store.mam_group(row["id"])
            members = tuple((m.account, m.setting) for m in self.store.mam_members(g.id))
            out.append(MamEntry(g.id, "cli", g.master, g.method, g.leftover, g.force_minimum, members))
        return out

    def mams(self) -> list[MamEntry]:
        return self.config_mams() + self.cli_mams()

    # -- checks ---------------------------------------------------------------
    def master_of(self, text: str) -> Login:
        master = account_of(self.config, text, "master")
        if master not in self.config.masters and master not in self.store.runtime_masters():
            raise InputError(f"master {text!r} is not a master: the daemon watches the deals of bridge.toml's "
                             f"[[master]] accounts and of those added with: bridge accounts add --master {text}")
        return master

    # -- masters --------------------------------------------------------------
    def masters(self) -> list[tuple[Login, str, str | None]]:
        """(account, source ``config`` or ``cli``, where a runtime master's copying starts) of every master."""
        return [(m, "config", None) for m in self.config.masters] + \
            [(m, "cli", start) for m, start in self.store.runtime_masters().items() if m not in self.config.masters]

    def add_master(self, text: str) -> Login:
        """Make a configured account a master at runtime: the daemon watches it and copies its deals from the
        moment it first does (its history, and the positions it holds then, are not copied)."""
        login = account_of(self.config, text, "master")
        if login in self.config.masters:
            raise InputError(f"{name_of(login)} is a [[master]] in bridge.toml already")
        follows = [f"copy {c.id}" for c in self.copies() if c.follower == login]
        follows += [f"MAM group {g.id}" for g in self.mams() if any(a == login for a, _ in g.members)]
        if follows:
            raise InputError(f"{name_of(login)} follows a master ({', '.join(follows)}): the orders copied to it "
                             f"would be copied on as its own deals; remove those routes first")
        with self.store.transaction():
            if not self.store.add_master(login):
                raise InputError(f"{name_of(login)} is a master already (added at runtime)")
        return login

    def remove_master(self, text: str) -> Login:
        """Stop watching a master added at runtime; refused while a route copies it."""
        login = account_of(self.config, text, "master")
        if login in self.config.masters:
            raise InputError(f"{name_of(login)} is a [[master]] in bridge.toml: delete it there")
        if login not in self.store.runtime_masters():
            raise InputError(f"{name_of(login)} is not a master (see: bridge accounts list)")
        uses = [f"copy {c.id}" for c in self.copies() if c.master == login]
        uses += [f"MAM group {g.id}" for g in self.mams() if g.master == login]
        if uses:
            raise InputError(f"{name_of(login)} is copied by {', '.join(uses)}: remove those first "
                             f"(bridge copy unsubscribe, bridge mam delete)")
        with self.store.transaction():
            self.store.remove_master(login)
        return login

    def _follows_once(self, master: Login, follower: Login) -> None:
        if follower == master:
            raise InputError(f"{name_of(follower)} cannot follow itself")
        for c in self.copies():
            if c.master == master and c.follower == follower:
                raise InputError(f"{name_of(follower)} already follows {name_of(master)} (copy {c.id})")
        for g in self.mams():
            if g.master == master and any(a == follower for a, _ in g.members):
                raise InputError(f"{name_of(follower)} already follows {name_of(master)} (MAM group {g.id})")

    def _cli_copy(self, sub_id: str) -> SubscriptionRow:
        row = self.store.subscription(sub_id)
        if row is None:
            if any(c.id == sub_id for c in self.config_copies()):
                raise InputError(f"copy {sub_id} is declared in bridge.toml: change it there")
            raise InputError(f"no copy subscription {sub_id!r} (see: bridge copy list)")
        return row

    def _cli_mam(self, group_id: str) -> MamGroupRow:
        group = self.store.mam_group(group_id)
        if group is None:
            if any(g.id == group_id for g in self.config.mams):
                raise InputError(f"MAM group {group_id} is declared in bridge.toml: change it there")
            raise InputError(f"no MAM group {group_id!r} (see: bridge mam list)")
        return group

    # -- copy -----------------------------------------------------------------
    def subscribe(self, master_text: str, follower_text: str, settings: dict, sub_id: str | None = None) -> str:
        """A new active subscription; returns its id. ``settings``: a copy settings mapping."""
        master = self.master_of(master_text)
        follower = account_of(self.config, follower_text, "follower")
        parse_settings(settings, "settings")
        terms, risk = split_risk(settings)
        with self.store.transaction():
            self._follows_once(master, follower)
            if sub_id is None:
                taken = {r.id for r in self.store.subscriptions()}
                sub_id = next(f"s{n}" for n in range(1, len(taken) + 2) if f"s{n}" not in taken)
            else:
                _check_id(sub_id, "copy id")
                if self.store.subscription(sub_id) is not None or sub_id.startswith("config-"):
                    raise InputError(f"copy id {sub_id!r} is taken")
            self.store.seal_close_requests(follower, master)  # copies from now on are the new route's
            strategy = str(master)
            if self.store.strategy(strategy) is None:
                self.store.upsert_strategy(StrategyRow(strategy, master, {}))
            self.store.upsert_subscription(SubscriptionRow(sub_id, strategy, follower, terms, risk))
        return sub_id

    def set_active(self, sub_id: str, active: bool) -> bool:
        """Pause or resume; False if it already was so."""
        with self.store.transaction():
            row = self._cli_copy(sub_id)
            if row.active == active:
                return False
            self.store.set_subscription_active(sub_id, active, None if active else PAUSED)
        return True

    def unsubscribe(self, sub_id: str, close_positions: bool = False) -> tuple[CopyEntry, list[AccountOrderRow]]:
        """Remove a subscription; with ``close_positions``, plan (in the same transaction) a close of every
        follower position linked to the master's positions (the daemon sends them: bridge.daemon.closes)."""
        with self.store.transaction():
            row = self._cli_copy(sub_id)
            entry = next(c for c in self.cli_copies() if c.id == sub_id)
            self.store.db.execute("DELETE FROM subscriptions WHERE id = ?", (row.id,))
            closes = self.store.plan_closes(entry.follower, entry.master, "unsubscribe", sub_id) \
                if close_positions else []
        return entry, closes

    def set_risk(self, sub_id: str, changes: dict) -> dict:
        """Set (or, for a value None, remove) risk limits; returns the limits now in force."""
        unknown = sorted(set(changes) - set(RISK_KEYS))
        if unknown:
            raise InputError(f"{unknown[0]} is not a risk limit (limits: {', '.join(RISK_KEYS)})")
        with self.store.transaction():
            row = self._cli_copy(sub_id)
            risk = dict(row.follower_settings)
            for key, value in changes.items():
                if value is None:
                    risk.pop(key, None)
                else:
                    risk[key] = value
            parse_settings({**row.settings, **risk}, f"copy {sub_id}")
            self.store.upsert_subscription(SubscriptionRow(row.id, row.strategy_id, row.follower, row.settings,
                                                           risk, row.active, row.stopped_out))
        return risk

    # -- MAM ------------------------------------------------------------------
    def mam_create(self, group_id: str, master_text: str, method: str, leftover: str, force_minimum: bool) -> None:
        _check_id(group_id, "MAM group id")
        master = self.master_of(master_text)
        group = MamGroupRow(group_id, master, _method(method).value, _leftover(leftover).value, force_minimum)
        with self.store.transaction():
            if self.store.mam_group(group_id) is not None or any(g.id == group_id for g in self.config.mams):
                raise InputError(f"MAM group {group_id!r} exists already")
            self.store.upsert_mam_group(group, [])

    def mam_add(self, group_id: str, account_text: str, setting: str | None) -> None:
        value = None if setting is None else _setting(setting)
        account = account_of(self.config, account_text)
        with self.store.transaction():
            group = self._cli_mam(group_id)
            self._follows_once(group.master, account)
            self.store.seal_close_requests(account, group.master)
            members = self.store.mam_members(group_id)
            self.store.upsert_mam_group(group, [*members, MamMemberRow(group_id, account, value)])

    def mam_remove(self, group_id: str, account_text: str, close_positions: bool = False) -> list[AccountOrderRow]:
        """Take a member out of a group; with ``close_positions``, plan the closes of its positions linked to
        the group master's positions, in the same transaction (as :meth:`unsubscribe`)."""
        account = account_of(self.config, account_text)
        with self.store.transaction():
            group = self._cli_mam(group_id)
            members = self.store.mam_members(group_id)
            if not any(m.account == account for m in members):
                raise InputError(f"{name_of(account)} is not a member of MAM group {group_id}")
            self.store.upsert_mam_group(group, [m for m in members if m.account != account])
            return self.store.plan_closes(account, group.master, "mam-remove", group_id) if close_positions else []

    def mam_set_method(self, group_id: str, method: str, leftover: str | None) -> None:
        with self.store.transaction():
            group = self._cli_mam(group_id)
            self.store.upsert_mam_group(MamGroupRow(
                group.id, group.master, _method(method).value,
                group.leftover if leftover is None else _leftover(leftover).value, group.force_minimum))

    def mam_delete(self, group_id: str, close_positions: bool = False) -> list[tuple[Login, list[AccountOrderRow]]]:
        """Delete a group; with ``close_positions``, plan for every member, in the same transaction, the closes
        :meth:`mam_remove` plans for one. Returns (member, its closes) for every member, in order."""
        with self.store.transaction():
            group = self._cli_mam(group_id)
            members = [m.account for m in self.store.mam_members(group_id)]
            self.store.db.execute("DELETE FROM mam_members WHERE group_id = ?", (group_id,))
            self.store.db.execute("DELETE FROM mam_groups WHERE id = ?", (group_id,))
            return [(account, self.store.plan_closes(account, group.master, "mam-remove", group_id)
                     if close_positions else []) for account in members]


def _check_id(value: str, what: str) -> None:
    if not value or len(value) > 64 or not all(ch.isalnum() or ch in "-_." for ch in value):
        raise InputError(f"{what} {value!r} must be 1 to 64 letters, digits, '-', '_' or '.'")


def _method(text: str) -> Method:
    try:
        return Method(text)
    except ValueError:
        raise InputError(f"method {text!r} is not one of {', '.join(m.value for m in Method)}") from None


def _leftover(text: str) -> Leftover:
    try:
        return Leftover(text)
    except ValueError:
        raise InputError(f"leftover {text!r} is not one of {', '.join(m.value for m in Leftover)}") from None


def _setting(text: str) -> Decimal:
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise InputError(f"setting {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise InputError(f"setting {text!r} must be a number >= 0")
    return value
