"""What-if allocations: preview a MAM split or a copy fan-out from options or a TOML file.

The library behind ``bridge allocate``: it reads the
inputs, builds the engine's types, calls the pure functions in ``allocation/``
and returns an :class:`allocation.leg.Allocation`. Every input problem is an
:class:`bridge.errors.InputError` with one line naming the option or key.
"""
