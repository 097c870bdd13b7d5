"""Reconcile between deals (``[reconcile] every_s``): a copied position closed at the venue outside the
bridge (by hand, or a stop-out) is found while the daemon runs, not only at its next start.

A real daemon subprocess on a simulated venue process, reconciling every second: the follower's
copied position is closed at the venue by hand; the daemon unlinks it (and says so) without a
restart, and the master's later close sends that follower nothing. The venue's records are checked.
"""

from __future__ import annotations

import pytest

from bridge.store import Store
from tests.processes import Client, settled, sim_world, wait_for

VENUE = "live"


def account(login: int) -> str:
    return f"sim/{VENUE}/{login}"


@pytest.fixture
def world(tmp_path, request):
    return sim_world(tmp_path, request, VENUE, [(1000, 100000), (2001, 10000), (2002, 10000)],
                     f"[reconcile]\nevery_s = 1\n[[master]]\naccount = \"{VENUE}/1000\"\n"
                     + "".join(f"[[copy]]\nmaster = \"{VENUE}/1000\"\nfollower = \"{VENUE}/{f}\"\n"
                               for f in (2001, 2002)))


def link_states(config, login: int) -> list[str]:
    with Store.open(config.parent / "bridge.sqlite") as store:
        return [r["state"] for r in store.db.query("SELECT state FROM links WHERE follower_id = ?", (account(login),))]


def trades(venue: Client, login: int) -> int:
    return len([d for d in venue.venue("deals_since", account=account(login), after=None) if d["kind"] != "balance"])


def test_a_position_closed_at_the_venue_is_found_between_deals(world):
    venue, bridge, config = world
    bridge.start()
    master_position = venue.venue("trade", account=account(1000), symbol="EURUSD", side="buy",
                                  amount="1.00")["position_id"]
    bridge.wait(settled(2), "the open copied to both followers")
    bridge.wait(lambda s: s["worker"]["reconcile"] == {"followers": 2, "skipped": 0, "drifted": 0},
                "a clean reconcile between deals")
    (position,) = venue.venue("positions", account=account(2002))
    venue.venue("close", account=account(2002), position_id=position["position_id"])  # by hand, or a stop-out

    wait_for(lambda: link_states(config, 2002) == ["unlinked"], "the daemon to find the close without a restart")
    assert link_states(config, 2001) == ["open"]
    assert "closed" in (config.parent / "bridge.log").read_text()
    venue.venue("close", account=account(1000), position_id=master_position)
    bridge.wait(settled(3), "the master's close copied to the follower that still holds its copy")
    assert trades(venue, 2001) == 2 and trades(venue, 2002) == 2  # 2002: the copy and the close by hand only
    assert venue.venue("positions", account=account(2001)) == [] == venue.venue("positions", account=account(2002))


def test_every_s_is_checked(tmp_path):
    from bridge.daemon import config as bridge_config
    from bridge.errors import InputError

    text = '[reconcile]\nevery_s = -1\n[[venue]]\nname = "v"\nplatform = "sim"\n'
    with pytest.raises(InputError, match=r"every_s must be a non-negative integer"):
        bridge_config.parse(__import__("tomllib").loads(text), "bridge.toml", tmp_path)
