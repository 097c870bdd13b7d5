"""The ZeroMQ bus: documented frames (:mod:`bridge.bus.frame`), publisher and subscriber with
sequence numbers and replay (:mod:`bridge.bus.channel`), and their Twisted driver
(:mod:`bridge.bus.reactor`)."""
