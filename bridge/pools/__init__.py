"""PAMM pools kept in the store and operated from the CLI and the daemon.

:mod:`~bridge.pools.book` (:class:`~bridge.pools.book.PoolBook`: every step is
load, apply the pure ledger of :mod:`allocation.pamm`, write, in one store
transaction), :mod:`~bridge.pools.audit` (replay and fold a stored pool),
:mod:`~bridge.pools.codec` (the ledger's state and entries as JSON, exactly),
:mod:`~bridge.pools.render` (a rollover as JSON and text).
"""
