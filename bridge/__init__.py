"""copybridge: the daemon, bus, store, worker, executors and CLI.

Importing ``bridge`` imports nothing heavy: the domain types live in
``bridge.domain`` and carry no Twisted or ZeroMQ dependency.
"""

__version__ = "0.1.0"
