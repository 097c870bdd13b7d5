"""TLS client options for an Open API endpoint: the certificate and the host name are always verified.

``client_options("live.ctraderapi.com")`` trusts the operating system's CA store
(``platformTrust``); ``client_options("localhost", ca_pem=...)`` trusts one CA only
(the local server's, in tests and staging). Host name checks use
``service_identity`` (installed by ``twisted[tls]``): a certificate for another
name fails the handshake, and the session reconnects with backoff.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust


def client_options(host: str, ca_pem: bytes | None = None):
    trust = Certificate.loadPEM(ca_pem) if ca_pem is not None else platformTrust()
    return optionsForClientTLS(host, trustRoot=trust)


def client_options_from_file(host: str, ca_file: Path | None):
    return client_options(host, None if ca_file is None else Path(ca_file).read_bytes())
