"""A simulated venue with three accounts (a master, a hedging and a netting follower), on a test clock."""

from __future__ import annotations

import random
from decimal import Decimal

from twisted.internet.task import Clock

from bridge.domain.ids import Login, Platform, ServerId
from connectors.sim import SimConfig, SimVenue

LOT = 10_000_000  # one EURUSD lot in canonical units
MASTER = Login(ServerId(Platform.SIM, "sim"), 1001)
HEDGER = Login(ServerId(Platform.SIM, "sim"), 2001)
NETTER = Login(ServerId(Platform.SIM, "sim"), 3001)


def make_venue(seed: int = 7, **config) -> tuple[SimVenue, Clock]:
    clock = Clock()
    clock.advance(1_709_553_600)  # 2024-03-04 12:00 UTC
    venue = SimVenue("sim", clock, random.Random(seed), SimConfig(**config))
    venue.add_account(MASTER, Decimal("10000"))
    venue.add_account(HEDGER, Decimal("5000"))
    venue.add_account(NETTER, Decimal("5000"), hedging=False)
    return venue, clock
