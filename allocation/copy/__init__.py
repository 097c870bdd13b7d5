"""Copy trading: the settings chain, sizing, and copying one master deal to one follower."""

from allocation.copy.follower import Follower, LinkedPosition, Master, close_all, copy_deal
from allocation.copy.settings import CopySettings, Effective, resolve, settings_from_mapping

__all__ = [
    "CopySettings", "Effective", "Follower", "LinkedPosition", "Master",
    "close_all", "copy_deal", "resolve", "settings_from_mapping",
]
