"""A development certificate authority: a server certificate for the services and one client
certificate per machine (an agency's or shelter's system, a refnet service, a front door).
`make run` and the tests use it; production certificates come from the cluster's issuer (see
deploy/k8s/README.md). The servers get a directory of their own (`server_dir`: ca.pem, server.pem,
server.key) that never holds the CA's private key."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 30


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)


class DevPki:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_dir(self) -> Path:
        """What a server mounts: the CA's certificate, its own certificate and key; not the CA's key."""
        return self.dir / "server"

    def ensure(self) -> DevPki:
        if not self.ca.exists():
            self._make_ca()
        if not (self.server_dir / "server.pem").exists():
            self._make_server()
        return self

    def client(self, subject_id: str, role: str, valid_days: int = VALID_DAYS,
               not_before: dt.datetime | None = None) -> tuple[Path, Path]:
        """(cert, key) for a machine: CN is its id (an agency, shelter, service or front door), OU its role."""
        path = self.dir / "clients" / f"{role}-{subject_id}"
        if not path.with_suffix(".pem").exists() or not_before is not None:
            name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refnet"),
                              x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                              x509.NameAttribute(NameOID.COMMON_NAME, subject_id)])
            key = _key()
            cert = self._sign(name, key, valid_days, not_before, client=True)
            _write(path, cert, key)
        return path.with_suffix(".pem"), path.with_suffix(".key")

    def _make_ca(self) -> None:
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refnet"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "refnet development CA")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .sign(key, hashes.SHA256()))
        _write(self.dir / "ca", cert, key)

    def _make_server(self) -> None:
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refnet"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        _write(self.server_dir / "server", self._sign(name, key, VALID_DAYS, None, client=False), key)
        (self.server_dir / "ca.pem").write_bytes(self.ca.read_bytes())

    def _sign(self, name: x509.Name, key: ec.EllipticCurvePrivateKey, valid_days: int,
              not_before: dt.datetime | None, client: bool) -> x509.Certificate:
        ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        ca_key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + dt.timedelta(days=valid_days)))
        if client:
            builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        return builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
