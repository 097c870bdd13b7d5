"""``bridge status`` for a person: the daemon's answer (:func:`bridge.daemon.control.status_of`) as labelled
lines. ``--json`` prints the answer itself."""

from __future__ import annotations


def _counts(mapping: dict) -> str:
    return ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in mapping.items()) or "none"


def _describe(value) -> str:
    """A connection's state as a venue reports it (a mapping of its fields, or text)."""
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')} {item}" for key, item in value.items() if item not in (None, ""))
    return str(value)


def status_lines(answer: dict) -> list[tuple[str, str]]:
    """(label, text) per line, in the order an operator reads them: what runs, what it is connected to,
    where the bus and the journal stand, what is in flight."""
    lines = [("roles", ", ".join(answer.get("roles", [])) or "none")]
    venues = ", ".join(answer.get("venues", [])) or "none"
    if "venues_ready" in answer:
        venues += " (connected and reconciled)" if answer["venues_ready"] else " (connecting)"
    lines.append(("venues", venues))
    for name, state in answer.get("connections", {}).items():
        for part in state if isinstance(state, list) else [state]:
            lines.append(("connection", f"{name}: {_describe(part)}"))
    connector = answer.get("connector")
    if connector:
        lines.append(("connector", f"epoch {connector['epoch']}, seq {connector['seq']}, "
                                   f"{connector['published']} deal(s) published, "
                                   f"{connector.get('bad_requests', 0)} bad request(s)"))
        lines.append(("watching", ", ".join(connector.get("watching", [])) or "no account"))
    worker = answer.get("worker")
    if worker:
        bus, journal = worker["bus"], worker["journal"]
        lines.append(("bus", f"epoch {bus['epoch']}, next seq {bus['next_seq']}, {bus['delivered']} delivered, "
                             f"{bus['duplicates']} duplicate(s), {bus['bad_frames']} bad frame(s)"
                             + (", replaying" if bus.get("replaying") else "")))
        lines.append(("journal", f"{journal['deals']} master deal(s), last seq {journal['last_seq']}, "
                                 f"{journal['duplicate_deliveries']} duplicate delivery(ies)"))
        lines.append(("orders", _counts(worker.get("intents", {}))))
        lines.append(("worker", "idle" if worker.get("idle") else "working"))
        masters = worker.get("masters") or {}
        lines.append(("masters", ", ".join(f"{m} {state}" for m, state in masters.items()) or "none"))
        last = worker.get("reconcile")
        lines.append(("reconcile", "not yet between deals" if not last else
                      f"last between deals: {last['followers']} follower(s), {last['drifted']} drifted, "
                      f"{last['skipped']} skipped"))
    closes = answer.get("closes")
    if closes:
        lines.append(("closes", _counts(closes)))
    pools = answer.get("pools")
    if pools:
        text = f"{pools['rollovers']} rollover(s), {pools['failures']} failure(s); orders {_counts(pools['orders'])}"
        lines.append(("pools", text))
        for pool, error in pools.get("errors", {}).items():
            lines.append(("pool error", f"{pool}: {error}"))
    return lines


def render(answer: dict) -> str:
    lines = status_lines(answer)
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {text}" for label, text in lines)
