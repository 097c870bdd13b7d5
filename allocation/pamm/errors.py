"""Errors of the PAMM ledger: one line naming the problem; the state is never changed."""

from allocation.errors import AllocationError


class PammError(AllocationError):
    """A request, setting or step the pool refuses. Nothing was changed."""


class ConservationError(PammError):
    """A rollover whose books do not balance to the cent. The rollover was not applied."""
