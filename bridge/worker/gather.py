"""``gather``: wait for many Deferreds at once, cheaply.

Twisted's ``gatherResults`` builds a DeferredList with its bookkeeping per
item; on the order path, where most answers are already there (an in-process
venue, the account book), a plain counter does the same job for a fraction of
the cost. Results come in the order given; the first failure fails the whole
(the others' failures are consumed, so none is left unhandled).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.failure import Failure


def gather(deferreds: list[defer.Deferred]) -> defer.Deferred:
    """Fires with every result, in order, or with the first failure."""
    count = len(deferreds)
    if count == 0:
        return defer.succeed([])
    results: list = [None] * count
    state = {"left": count, "failure": None}
    out = defer.Deferred()

    def ok(result, i: int) -> None:
        results[i] = result
        state["left"] -= 1
        if state["left"] == 0 and not out.called:
            if state["failure"] is None:
                out.callback(results)
            else:
                out.errback(state["failure"])

    def failed(failure: Failure, i: int) -> None:
        if state["failure"] is None:
            state["failure"] = failure
        ok(None, i)

    for i, d in enumerate(deferreds):
        d.addCallbacks(ok, failed, callbackArgs=(i,), errbackArgs=(i,))
    return out
