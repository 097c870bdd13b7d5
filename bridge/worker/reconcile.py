"""Reconcile: the follower positions the links expect against what the venue holds.

Run on every (re)connect and at startup, per follower account:

* a linked follower position the venue no longer holds was closed outside the
  bridge (by hand, or by its own stop): the link is marked ``unlinked``, and
  nothing is ever reopened on that master position for that follower;
* a linked position whose volume differs from the link's, and a position the
  bridge opened (it carries a bridge key) that no link knows, are *drift*:
  always reported; healed only as the drift policy (``[reconcile] drift`` in
  ``bridge.toml``) says:

  - ``report`` (the default): nothing is changed;
  - ``adopt``: a volume mismatch is settled in the venue's favour: the link
    takes the volume the follower really holds, so the master's later partial
    closes are proportioned on it. A position no link knows is left alone
    (closing a follower's position is never done without a master deal).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum

from twisted.internet import defer

from bridge.domain.ids import Login, PositionId
from bridge.store import Store

log = logging.getLogger("bridge.reconcile")


class DriftPolicy(str, Enum):
    REPORT = "report"
    ADOPT = "adopt"


@dataclass
class Drift:
    follower: Login
    closed_outside: list[PositionId] = field(default_factory=list)  # master positions now unlinked
    volume_mismatch: list[tuple[PositionId, int, int]] = field(default_factory=list)  # (master pos, link, venue)
    unlinked_bridge_positions: list[PositionId] = field(default_factory=list)  # follower positions
    adopted: list[PositionId] = field(default_factory=list)  # master positions whose link took the venue's volume

    @property
    def clean(self) -> bool:
        return not (self.volume_mismatch or self.unlinked_bridge_positions)


@defer.inlineCallbacks
def reconcile(store: Store, venue, follower: Login, policy: DriftPolicy = DriftPolicy.REPORT, quiet=None):
    """Compare one follower's links with its venue positions; returns a :class:`Drift`.

    ``quiet``: for a reconcile between deals, called when the venue's positions arrive: False (an order
    went out or a deal came in meanwhile, so the positions may be newer than the links) skips this
    follower, returning None, with nothing changed."""
    positions = yield venue.positions(follower)
    if quiet is not None and not quiet():
        return None
    held = {p.position_id: p for p in positions}
    drift = Drift(follower)
    links = store.open_links(str(follower))
    for link in links:
        position = held.get(link.follower_position)
        if position is None:
            store.unlink(link.master_position, str(follower), link.follower_position, link.master_id)
            drift.closed_outside.append(link.master_position)
            log.info("reconcile: %s closed %s outside the bridge; unlinked", follower, link.follower_position)
        elif position.volume != link.volume:
            drift.volume_mismatch.append((link.master_position, link.volume, position.volume))
            if policy is DriftPolicy.ADOPT:
                store.set_link_volume(link.master_position, str(follower), position.volume, link.follower_position,
                                      link.master_id)
                drift.adopted.append(link.master_position)
                log.warning("reconcile: %s holds %s of %s, the link said %s; the link now says %s (policy adopt)",
                            follower, position.volume, link.follower_position, link.volume, position.volume)
    linked = {link.follower_position for link in links}
    drift.unlinked_bridge_positions = [p.position_id for p in positions if p.key and p.position_id not in linked]
    if not drift.clean:
        log.warning("reconcile: drift on %s: %s", follower, drift)
    return drift
