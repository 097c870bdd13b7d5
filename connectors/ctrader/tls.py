"""TLS client options for an Open API endpoint: the certificate and the host name are always verified.

``client_options("live.ctraderapi.com")`` trusts the operating system's CA store
(``platformTrust``); ``client_options("localhost", ca_pem=...)`` trusts one CA only
(the local server's, in tests and staging). Host name checks use
``service_identity`` (installed by ``twisted[tls]``): a certificate for another
name, or from another CA, fails the handshake; the connection writes nothing
before the handshake has verified (``connection.py``), logs the failure in one
line and the session reconnects with backoff (``session.py``).
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust


def client_options(host: str, ca_pem: bytes | None = None):
    trust = Certificate.loadPEM(ca_pem) if ca_pem is not None else platformTrust()
    return optionsForClientTLS(host, trustRoot=trust)


def client_options_from_file(host: str, ca_file: Path | None):
    return client_options(host, None if ca_file is None else Path(ca_file).read_bytes())
