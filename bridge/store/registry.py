"""Configuration rows: accounts, their symbol specs, strategies, subscriptions, MAM groups.

Simple upserts (sqlite-utils ``Table.upsert``: insert, or update every given
column of the row with that primary key) and typed gets. Settings are JSON
dicts (see :func:`bridge.store.codec.json_out`: Decimals as strings, floats
refused; numbers with a fraction read back as Decimals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bridge.domain.ids import Login
from bridge.domain.volume import SymbolSpec
from bridge.store.base import StoreBase
from bridge.store.codec import account_out, dec_in, dec_out, json_in, json_out
from bridge.store.errors import StoreError

ROLES = ("master", "follower")


@dataclass(frozen=True, slots=True)
class AccountRow:
    login: Login
    role: str  # 'master' or 'follower'
    currency: str
    hedging: bool  # False: netting

    @property
    def id(self) -> str:
        return str(self.login)


@dataclass(frozen=True, slots=True)
class StrategyRow:
    id: str
    master: Login
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    id: str
    strategy_id: str
    follower: Login
    settings: dict[str, Any] = field(default_factory=dict)  # the strategy's terms for this follower
    follower_settings: dict[str, Any] = field(default_factory=dict)  # the follower's own limits
    active: bool = True
    stopped_out: str | None = None  # why copying stopped, or None


@dataclass(frozen=True, slots=True)
class MamGroupRow:
    id: str
    master: Login
    method: str  # allocation.mam.Method value
    leftover: str  # allocation.mam.Leftover value
    force_minimum: bool = False


@dataclass(frozen=True, slots=True)
class MamMemberRow:
    group_id: str
    account: Login
    setting: Decimal | None = None  # percent, multiplier or lots, as the method reads it


def _login(value: Login, what: str) -> Login:
    if not isinstance(value, Login):
        raise StoreError(f"{what} must be a Login, not {type(value).__name__}")
    return value


class RegistryStore(StoreBase):
    """The configuration tables."""

    # -- accounts -------------------------------------------------------------
    def upsert_account(self, account: AccountRow) -> None:
        login = _login(account.login, "account login")
        if account.role not in ROLES:
            raise StoreError(f"account {login}: role must be master or follower, not {account.role!r}")
        self.db["accounts"].upsert({
            "id": str(login), "platform": login.platform.value, "server": login.server.name,
            "login": login.number, "role": account.role, "currency": account.currency,
            "hedging": int(bool(account.hedging)),
        }, pk="id")

    def account(self, login: Login | str) -> AccountRow | None:
        row = self._one("SELECT * FROM accounts WHERE id = ?", (account_out(login),))
        return None if row is None else _account_of(row)

    def accounts(self, role: str | None = None) -> list[AccountRow]:
        """All accounts (of ``role`` if given), by id."""
        if role is None:
            rows = self.db.query("SELECT * FROM accounts ORDER BY id")
        else:
            rows = self.db.query("SELECT * FROM accounts WHERE role = ? ORDER BY id", (role,))
        return [_account_of(row) for row in rows]

    # -- masters added at runtime (migration 0007) ----------------------------
    def add_master(self, login: Login) -> bool:
        """Record ``login`` as a master added at runtime; False if it is one already."""
        from datetime import datetime, timezone

        cursor = self.db.conn.execute(
            "INSERT OR IGNORE INTO masters (id, added_at) VALUES (?, ?)",
            (str(_login(login, "master")), datetime.now(timezone.utc).isoformat(timespec="seconds")))
        return cursor.rowcount == 1

    def remove_master(self, login: Login) -> bool:
        """Forget a master added at runtime; False if it was not one."""
        return self.db.conn.execute("DELETE FROM masters WHERE id = ?", (account_out(login),)).rowcount == 1

    def runtime_masters(self) -> dict[Login, str | None]:
        """Masters added at runtime -> the venue deal id (text) their copying starts after: ``''`` when
        the account had no deal yet, None until the daemon first watches it."""
        return {Login.parse(row["id"]): row["start_after"]
                for row in self.db.query("SELECT id, start_after FROM masters ORDER BY added_at, id")}

    def start_master(self, login: Login, start_after: str) -> bool:
        """Record where a runtime master's copying starts (once: a later call changes nothing); True if
        this call recorded it."""
        return self.db.conn.execute(
            "UPDATE masters SET start_after = ? WHERE id = ? AND start_after IS NULL",
            (start_after, account_out(login))).rowcount == 1

    # -- symbol specs ---------------------------------------------------------
    def upsert_spec(self, account: Login | str, spec: SymbolSpec) -> None:
        if not isinstance(spec, SymbolSpec):
            raise StoreError(f"upsert_spec needs a SymbolSpec, not {type(spec).__name__}")
        self.db["symbol_specs"].upsert({
            "account_id": account_out(account), "symbol": spec.symbol,
            "contract_size": dec_out(spec.contract_size, "contract_size"),
            "min_volume": spec.min_volume, "max_volume": spec.max_volume,
            "step_volume": spec.step_volume, "digits": spec.digits,
        }, pk=("account_id", "symbol"))

    def spec(self, account: Login | str, symbol: str) -> SymbolSpec | None:
        row = self._one("SELECT * FROM symbol_specs WHERE account_id = ? AND symbol = ?",
                        (account_out(account), symbol))
        return None if row is None else _spec_of(row)

    def specs(self, account: Login | str) -> dict[str, SymbolSpec]:
        """Every spec of ``account``, by symbol."""
        return {row["symbol"]: _spec_of(row) for row in self.db.query(
            "SELECT * FROM symbol_specs WHERE account_id = ? ORDER BY symbol", (account_out(account),))}

    # -- strategies and subscriptions ----------------------------------------
    def upsert_strategy(self, strategy: StrategyRow) -> None:
        self.db["strategies"].upsert({
            "id": strategy.id, "master_id": str(_login(strategy.master, "strategy master")),
            "settings": json_out(strategy.settings, f"strategy {strategy.id} settings"),
        }, pk="id")

    def strategy(self, strategy_id: str) -> StrategyRow | None:
        row = self._one("SELECT * FROM strategies WHERE id = ?", (strategy_id,))
        return None if row is None else _strategy_of(row)

    def strategies(self, master: Login | None = None) -> list[StrategyRow]:
        """All strategies (of ``master`` if given), by id."""
        if master is None:
            rows = self.db.query("SELECT * FROM strategies ORDER BY id")
        else:
            rows = self.db.query("SELECT * FROM strategies WHERE master_id = ? ORDER BY id", (str(master),))
        return [_strategy_of(row) for row in rows]

    def upsert_subscription(self, subscription: SubscriptionRow) -> None:
        """Insert or update; the strategy must exist (foreign key)."""
        s = subscription
        record = {
            "id": s.id, "strategy_id": s.strategy_id,
            "follower_id": str(_login(s.follower, "subscription follower")),
            "settings": json_out(s.settings, f"subscription {s.id} settings"),
            "follower_settings": json_out(s.follower_settings, f"subscription {s.id} follower_settings"),
            "active": int(bool(s.active)), "stopped_out": s.stopped_out,
        }
        try:
            self.db["subscriptions"].upsert(record, pk="id")
        except Exception as e:  # sqlite3.IntegrityError: the strategy is unknown
            if "FOREIGN KEY" in str(e):
                raise StoreError(f"subscription {s.id}: unknown strategy {s.strategy_id!r}") from e
            raise

    def subscription(self, subscription_id: str) -> SubscriptionRow | None:
        row = self._one("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,))
        return None if row is None else _subscription_of(row)

    def subscriptions(self, strategy_id: str | None = None, *, active_only: bool = False) -> list[SubscriptionRow]:
        """Subscriptions (of ``strategy_id`` if given; active ones only if asked), by id."""
        sql, params = "SELECT * FROM subscriptions WHERE 1", []
        if strategy_id is not None:
            sql += " AND strategy_id = ?"
            params.append(strategy_id)
        if active_only:
            sql += " AND active = 1"
        return [_subscription_of(row) for row in self.db.query(sql + " ORDER BY id", params)]

    def set_subscription_active(self, subscription_id: str, active: bool, stopped_out: str | None = None) -> None:
        """Start or stop copying (``stopped_out`` says why it stopped)."""
        cursor = self.db.execute("UPDATE subscriptions SET active = ?, stopped_out = ? WHERE id = ?",
                                 (int(bool(active)), stopped_out, subscription_id))
        if cursor.rowcount != 1:
            raise StoreError(f"no subscription {subscription_id!r}")

    # -- MAM ------------------------------------------------------------------
    def upsert_mam_group(self, group: MamGroupRow, members: list[MamMemberRow] | None = None) -> None:
        """Insert or update a group; with ``members``, replace its members too, in one transaction."""
        record = {
            "id": group.id, "master_id": str(_login(group.master, "MAM group master")),
            "method": str(group.method), "leftover": str(group.leftover),
            "force_minimum": int(bool(group.force_minimum)),
        }
        rows = None
        if members is not None:
            rows = []
            for m in members:
                if m.group_id != group.id:
                    raise StoreError(f"MAM member {m.account} belongs to group {m.group_id}, not {group.id}")
                rows.append({"group_id": group.id, "account_id": str(_login(m.account, "MAM member")),
                             "setting": dec_out(m.setting, f"MAM member {m.account} setting")})
        with self.transaction():
            self.db["mam_groups"].upsert(record, pk="id")
            if rows is not None:
                self.db.execute("DELETE FROM mam_members WHERE group_id = ?", (group.id,))
                if rows:
                    self.db.conn.executemany(
                        "INSERT INTO mam_members (group_id, account_id, setting) "
                        "VALUES (:group_id, :account_id, :setting)", rows)

    def mam_group(self, group_id: str) -> MamGroupRow | None:
        row = self._one("SELECT * FROM mam_groups WHERE id = ?", (group_id,))
        if row is None:
            return None
        return MamGroupRow(row["id"], Login.parse(row["master_id"]), row["method"], row["leftover"],
                           bool(row["force_minimum"]))

    def mam_members(self, group_id: str) -> list[MamMemberRow]:
        """The group's members, by account id."""
        return [MamMemberRow(row["group_id"], Login.parse(row["account_id"]), dec_in(row["setting"]))
                for row in self.db.query(
                    "SELECT * FROM mam_members WHERE group_id = ? ORDER BY account_id", (group_id,))]


def _account_of(row: dict[str, Any]) -> AccountRow:
    return AccountRow(Login.parse(row["id"]), row["role"], row["currency"], bool(row["hedging"]))


def _spec_of(row: dict[str, Any]) -> SymbolSpec:
    return SymbolSpec(row["symbol"], dec_in(row["contract_size"]), row["min_volume"], row["max_volume"],
                      row["step_volume"], row["digits"])


def _strategy_of(row: dict[str, Any]) -> StrategyRow:
    return StrategyRow(row["id"], Login.parse(row["master_id"]), json_in(row["settings"]))


def _subscription_of(row: dict[str, Any]) -> SubscriptionRow:
    return SubscriptionRow(row["id"], row["strategy_id"], Login.parse(row["follower_id"]),
                           json_in(row["settings"]), json_in(row["follower_settings"]),
                           bool(row["active"]), row["stopped_out"])
