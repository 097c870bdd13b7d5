"""The store's one error type."""


class StoreError(Exception):
    """A store operation that cannot be done as asked: an illegal state transition,
    an unknown key, a duplicate in a plan, a value of the wrong type.

    The message names the row (intent key, deal seq, link) and what was wrong.
    """
