"""Routes: who follows each master (copy subscriptions and MAM groups), with the lookups the order
path asks per follower answered from indexes."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.domain.ids import Login
from bridge.worker.planning import CopyRoute, MamRoute


@dataclass
class Routes:
    """Who follows each master: copy subscriptions and MAM groups."""

    copy: dict[Login, list[CopyRoute]] = field(default_factory=dict)
    mam: dict[Login, list[MamRoute]] = field(default_factory=dict)
    _index: tuple[tuple, dict, dict] | None = field(default=None, repr=False, compare=False)
    _edits: int = field(default=0, repr=False, compare=False)

    def followers(self, master: Login) -> list[Login]:
        out = [r.follower for r in self.copy.get(master, [])]
        out += [login for group in self.mam.get(master, []) for login, _ in group.members]
        return list(dict.fromkeys(out))

    @property
    def version(self) -> tuple:
        """What caches of the routes compare: changes when routes are added or removed, and on
        :meth:`changed` (call it after editing a route in place)."""
        return (self._edits, sum(len(r) for r in self.copy.values()),
                sum(len(g.members) for r in self.mam.values() for g in r), len(self.copy), len(self.mam))

    def changed(self) -> None:
        self._edits += 1

    def succeed(self, previous: "Routes") -> None:
        """These routes replace ``previous``: take a version no cache of ``previous`` has seen."""
        self._edits = max(self._edits, previous._edits + 1)

    def refresh(self) -> tuple:
        """Rebuild the indexes if the routes changed; returns the version. The worker calls it once per
        deal, so that the per-order lookups below need not check."""
        version = self.version
        if self._index is None or self._index[0] != version:
            self._index = None
            self._indexes()
        return version

    def _indexes(self) -> tuple[dict, dict]:
        """(master id, follower id) -> max slippage points; (master, follower) -> its copy routes.

        Asked once per order or follower: answered from indexes built on first use and rebuilt by
        :meth:`refresh` when the routes changed."""
        if self._index is None:
            size = self.version
            slippage, by_follower = {}, {}
            for m, routes in self.copy.items():
                for r in routes:
                    # keyed by text: asked once per order, with a master Login parsed from the bus (equal to
                    # the configured one, not the same object: a Login key would be compared field by field)
                    slippage[(str(m), str(r.follower))] = r.settings.max_slippage_points
                    by_follower.setdefault((m, r.follower), []).append(r)
            self._index = (size, slippage, by_follower)
        return self._index[1], self._index[2]

    def max_slippage_points(self, master: Login, follower: str) -> int | None:
        """The follower's tolerance for fills worse than the master's price (copy routes only)."""
        return self._indexes()[0].get((str(master), follower))

    def symbols_for(self, master: Login, follower: Login, symbol: str) -> set[str]:
        wanted = {symbol}
        wanted |= {r.settings.map_symbol(symbol) for r in self._indexes()[1].get((master, follower), ())}
        return wanted
