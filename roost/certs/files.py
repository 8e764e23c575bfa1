"""Certificates and keys on disk, owner-only, and what a certificate says (parsed with cryptography).

Layout: HOME/certs (0700) holds `<host>.key` and `<host>.pem` (the chain, leaf first), each 0600,
written atomically so a reader never sees half a pair, and the ACME account key. Never talks to a CA.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roost.errors import ConfigError


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What the leaf of a chain says."""

    not_before: float
    not_after: float
    names: tuple[str, ...]
    issuer: str

    def covers(self, host: str) -> bool:
        """Whether the certificate is valid for `host` (an exact name or a one-label wildcard)."""
        host = host.lower().rstrip(".")
        for name in self.names:
            name = name.lower()
            if name == host or (name.startswith("*.") and host.partition(".")[2] == name[2:]):
                return True
        return False


def read_info(chain_pem: bytes) -> CertInfo:
    """Parse the first certificate of a PEM chain. Raises ConfigError when it is not one."""
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except (ValueError, IndexError) as exc:
        raise ConfigError("the certificate file holds no PEM certificate", hint="pass the chain, leaf first") from exc
    try:
        names = tuple(
            leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        )
    except x509.ExtensionNotFound:
        names = ()
    return CertInfo(
        not_before=leaf.not_valid_before_utc.timestamp(),
        not_after=leaf.not_valid_after_utc.timestamp(),
        names=names,
        issuer=leaf.issuer.rfc4514_string(),
    )


def check_pair(chain_pem: bytes, key_pem: bytes) -> CertInfo:
    """A supplied certificate and key that belong together. Raises ConfigError naming what is wrong."""
    info = read_info(chain_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "the key file holds no unencrypted PEM private key", hint="pass the certificate's private key, unencrypted"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError("the key is neither RSA nor ECDSA", hint="use an RSA or ECDSA key")
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    ours = key.public_key().public_bytes(serialization.Encoding.DER, public)
    if leaf.public_key().public_bytes(serialization.Encoding.DER, public) != ours:
        raise ConfigError(
            "the key does not belong to the certificate", hint="pass the key the certificate was made for"
        )
    return info


def self_signed(
    host: str, days: float = 7, *, not_before: float | None = None, label: str | None = None
) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a throwaway self-signed ECDSA P-256 certificate for `host`,
    valid `days` from `not_before` (default: five minutes ago), its common name `label` or `host`.
    The admin API serves one on its own name until the CA's certificate arrives, so it never falls
    back to HTTP; tests and bench/proxy.py --tls make theirs here too."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, label or host)])
    start = (
        datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        if not_before is None
        else datetime.datetime.fromtimestamp(not_before, datetime.UTC)
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


class CertificateFiles:
    """HOME/certs: one key and one chain per host, owner-only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key_path(self, host: str) -> Path:
        return self.folder / f"{host}.key"

    def chain_path(self, host: str) -> Path:
        return self.folder / f"{host}.pem"

    def has(self, host: str) -> bool:
        return self.key_path(host).is_file() and self.chain_path(host).is_file()

    def write(self, host: str, key_pem: bytes, chain_pem: bytes) -> None:
        """Replace `host`'s pair: the key first, so a chain on disk always has its key beside it."""
        self.write_private(self.key_path(host), key_pem)
        self.write_private(self.chain_path(host), chain_pem)

    def temporary_path(self, host: str) -> tuple[Path, Path]:
        """(chain, key) of `host`'s temporary self-signed pair; dot files, so never a host's pair."""
        return self.folder / f".self-signed-{host}.pem", self.folder / f".self-signed-{host}.key"

    def read_chain(self, host: str) -> bytes:
        return self.chain_path(host).read_bytes()

    def hosts(self) -> set[str]:
        """The hosts that have a chain on disk."""
        if not self.folder.is_dir():
            return set()
        return {path.name.removesuffix(".pem") for path in self.folder.glob("*.pem") if not path.name.startswith(".")}

    def remove(self, host: str) -> None:
        for path in (self.chain_path(host), self.key_path(host)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def write_private(self, path: Path, data: bytes) -> None:
        """Write `data` to `path` atomically with mode 0600, in a 0700 folder."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
