"""A local certificate authority and a server certificate for 127.0.0.1 and localhost.

So the tests and ``bridge sim ctrader`` run over TLS with no files given: the
CA is generated in memory (EC P-256 keys, valid for a year from now, wall
time), and its certificate can be handed to a client that verifies the server
(``ssl.optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(ca_pem))``).
``--cert/--key`` load your own PEM files instead.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import ssl

HOSTS = ("localhost", "127.0.0.1")


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """PEM bytes: the server's certificate and key, and the CA that signed it (None for your own files)."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes | None = None

    def options(self) -> ssl.CertificateOptions:
        """Twisted TLS options for ``listenSSL``."""
        return ssl.PrivateCertificate.loadPEM(self.key_pem + self.cert_pem).options()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "copybridge local cTrader simulator")])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def local_identity(hosts: tuple[str, ...] = HOSTS, days: int = 365) -> ServerIdentity:
    """A fresh CA and a server certificate for ``hosts`` (names and IP addresses) signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("copybridge local CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return ServerIdentity(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key),
                          ca.public_bytes(serialization.Encoding.PEM))


def identity_from_files(cert: str | Path, key: str | Path) -> ServerIdentity:
    """Your own PEM certificate (chain) and key; ValueError with one line if they do not load."""
    try:
        identity = ServerIdentity(Path(cert).read_bytes(), Path(key).read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        identity.options()
    except Exception as exc:  # OpenSSL raises several types for a bad PEM or a mismatched pair
        raise ValueError(f"{cert} / {key}: not a usable PEM certificate and key ({type(exc).__name__})") from None
    return identity
