"""Pure volume math: MAM block splits and copy-trading sizing. No I/O, no floats.

Every function here takes volumes as canonical integers (see
``bridge.domain.volume``) and returns :class:`allocation.leg.Leg` objects that
carry the ideal volume, the volume to send, and the reason they differ.
"""
