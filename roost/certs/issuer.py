"""Obtaining a certificate from an ACME CA (RFC 8555) with the `acme` library (the certbot project's).

Blocking: every call does network I/O, so callers run it in a thread, never on the event loop.
The HTTP-01 answers are published on a `ChallengeBoard` (the edge's) for the CA to fetch; the
certificate and key are returned, never written here (control keeps them through CertificateFiles).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import josepy
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roost import __version__
from roost.certs.files import CertificateFiles
from roost.errors import CertificateRefused, Unavailable

log = logging.getLogger("roost.certs")
TIMEOUT_ORDER = 90.0  # seconds the CA has to validate and issue
TIMEOUT_HTTP = 30  # one request to the CA
ACCOUNT_KEY = "account.key"
HTTP_01, TLS_ALPN_01 = "http-01", "tls-alpn-01"
CHALLENGES = (HTTP_01, TLS_ALPN_01)
ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737: the key authorization's digest


class ChallengeBoard(Protocol):
    """Where challenge answers are put up for the CA: HTTP-01 key authorizations by token (the edge
    serves them on the HTTP port), TLS-ALPN-01 certificates by host (served to `acme-tls/1`)."""

    def publish(self, token: str, key_authorization: str) -> None: ...

    def withdraw(self, token: str) -> None: ...

    def publish_alpn(self, host: str, chain_pem: bytes, key_pem: bytes) -> None: ...

    def withdraw_alpn(self, host: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AcmeSettings:
    """`directory`: the CA's directory URL; `ca_bundle`: trust for a private CA's own HTTPS."""

    directory: str
    email: str | None = None
    ca_bundle: Path | None = None
    challenge: str = HTTP_01  # or TLS_ALPN_01, answered on the HTTPS port where port 80 is closed


@dataclass(frozen=True, slots=True)
class Issued:
    key_pem: bytes
    chain_pem: bytes


class Issuer:
    """One ACME account (its key kept in HOME/certs) that orders certificates, one name each.

    Example (in a thread)::

        issuer = Issuer(AcmeSettings("https://acme-v02.api.letsencrypt.org/directory", "ops@example.com"), files)
        issued = issuer.issue("shop.example.com", board)

    Raises CertificateRefused with the CA's own words when it refuses (a failed challenge, a rate
    limit, a name it will not issue for), and Unavailable when the CA cannot be reached.
    """

    def __init__(self, settings: AcmeSettings, files: CertificateFiles) -> None:
        self.settings = settings
        self.files = files
        self._client: client.ClientV2 | None = None

    def issue(self, host: str, board: ChallengeBoard) -> Issued:
        try:
            return self._issue(host, board)
        except errors.ValidationError as exc:
            raise CertificateRefused(
                f"the CA could not validate {host}: {_validation_detail(exc)}",
                hint=f"point {host}'s DNS (A/AAAA) at this server and let the CA reach its HTTP port (80)",
            ) from exc
        except messages.Error as exc:
            self._client = None  # an account error (e.g. a CA that forgot us) is fixed by registering again
            raise CertificateRefused(
                f"the CA refused {host}: {exc.detail or exc.description or exc.typ}",
                hint="fix what the CA names; Roost retries with back-off",
            ) from exc
        except (errors.TimeoutError, errors.PollError) as exc:
            raise CertificateRefused(
                f"the CA did not finish validating {host} within {TIMEOUT_ORDER:.0f}s",
                hint="check that the CA can reach this server's HTTP port; Roost retries with back-off",
            ) from exc
        except (requests.RequestException, errors.ClientError, josepy.errors.Error) as exc:
            self._client = None
            raise Unavailable(
                f"cannot talk to the ACME CA at {self.settings.directory}: {exc}",
                hint="check --acme-directory and the network (and --acme-ca-bundle for a private CA)",
            ) from exc

    def _issue(self, host: str, board: ChallengeBoard) -> Issued:
        acme = self._account()
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        order = acme.new_order(crypto_util.make_csr(key_pem, [host]))
        tokens: list[str] = []
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue  # the CA reused an earlier validation
                if self.settings.challenge == TLS_ALPN_01:
                    self._answer_alpn(acme, authz, host, board)
                    continue
                challenge = _http01(authz)
                response, validation = challenge.response_and_validation(acme.net.key)
                token = challenge.chall.encode("token")
                board.publish(token, validation)
                tokens.append(token)
                acme.answer_challenge(challenge, response)
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=TIMEOUT_ORDER)
            done = acme.poll_and_finalize(order, deadline)
        finally:
            for token in tokens:
                board.withdraw(token)
            if self.settings.challenge == TLS_ALPN_01:
                board.withdraw_alpn(host)
        return Issued(key_pem, done.fullchain_pem.encode())

    def _answer_alpn(
        self, acme: client.ClientV2, authz: messages.AuthorizationResource, host: str, board: ChallengeBoard
    ) -> None:
        """TLS-ALPN-01 (RFC 8737): a certificate for `host` carrying the key authorization's digest,
        served to the CA's `acme-tls/1` handshake. The acme library no longer implements it: the
        challenge is read from its JSON and answered with an empty object, as RFC 8555 says."""
        challenge = _challenge(authz, TLS_ALPN_01)
        token = str(challenge.chall.to_partial_json()["token"])
        account = acme.net.key
        if account is None:  # the client is always made with our account key (_account)
            raise Unavailable("the ACME client has no account key", hint="restart roost serve")
        thumbprint = josepy.b64.b64encode(account.thumbprint()).decode()
        chain_pem, key_pem = alpn_certificate(host, f"{token}.{thumbprint}")
        board.publish_alpn(host, chain_pem, key_pem)
        acme.answer_challenge(challenge, challenges.HTTP01Response())  # serialises to {}

    def _account(self) -> client.ClientV2:
        """The ACME client with our account registered (again after a restart: registering an
        existing key returns the account)."""
        if self._client is not None:
            return self._client
        jwk = josepy.jwk.JWKRSA(key=self._account_key())
        # requests takes a CA bundle's path where acme's signature says bool
        verify = cast(bool, str(self.settings.ca_bundle)) if self.settings.ca_bundle else True
        net = client.ClientNetwork(jwk, verify_ssl=verify, user_agent=f"roost/{__version__}", timeout=TIMEOUT_HTTP)
        acme = client.ClientV2(client.ClientV2.get_directory(self.settings.directory, net), net)
        registration = messages.NewRegistration.from_data(email=self.settings.email, terms_of_service_agreed=True)
        try:
            acme.new_account(registration)
        except errors.ConflictError as exc:
            net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        self._client = acme
        return acme

    def _account_key(self) -> rsa.RSAPrivateKey:
        path = self.files.folder / ACCOUNT_KEY
        if path.is_file():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(key, rsa.RSAPrivateKey):
                return key
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.files.write_private(path, pem)
        return key


def alpn_certificate(host: str, key_authorization: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `host` with the critical acmeIdentifier extension (RFC 8737)."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _challenge(authz: messages.AuthorizationResource, kind: str) -> messages.ChallengeBody:
    for challenge in authz.body.challenges:
        if challenge.chall.to_partial_json().get("type") == kind:
            return challenge
    raise CertificateRefused(
        f"the CA offers no {kind} challenge for {authz.body.identifier.value}",
        hint="use --acme-challenge http-01, or supply the certificate with --cert/--key",
    )


def _http01(authz: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authz.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    raise CertificateRefused(
        f"the CA offers no HTTP-01 challenge for {authz.body.identifier.value}",
        hint="use a CA that validates over HTTP-01, or supply the certificate with --cert/--key",
    )


def _validation_detail(exc: errors.ValidationError) -> str:
    """The CA's own words about each failed challenge."""
    found = [
        str(challenge.error.detail or challenge.error.description or challenge.error.typ)
        for authz in exc.failed_authzrs
        for challenge in authz.body.challenges
        if challenge.error is not None
    ]
    return "; ".join(found) or "no reason given"
