"""A protocol-faithful local cTrader Open API server (placeholder docstring; see server.py)."""

from connectors.ctrader.server.certificates import ServerIdentity, identity_from_files, local_identity
from connectors.ctrader.server.credentials import Credentials, CredentialsError
from connectors.ctrader.server.faults import FaultConfig
from connectors.ctrader.server.server import CTraderServer

__all__ = ["CTraderServer", "Credentials", "CredentialsError", "FaultConfig", "ServerIdentity",
           "identity_from_files", "local_identity"]
