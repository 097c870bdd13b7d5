"""Errors the allocation engine raises for inputs it cannot allocate."""


class AllocationError(ValueError):
    """Inputs that make no allocation possible (duplicate account, bad percentages, ...).

    The message is one line naming the problem; the CLI prints it and exits 2.
    """
