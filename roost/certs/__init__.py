"""Certificates for custom domains: the renewal schedule (pure), the owner-only files, the ACME issuer.

Never touches the store or the edge: control decides what to issue and when, the daemon hands
the edge its TLS snapshot.
"""

from roost.certs.files import CertificateFiles, CertInfo, check_pair, read_info, self_signed
from roost.certs.issuer import (
    CHALLENGES,
    HTTP_01,
    TLS_ALPN_01,
    AcmeSettings,
    ChallengeBoard,
    Issued,
    Issuer,
)
from roost.certs.schedule import RenewalPolicy, after_failure, backoff, due, due_at, next_wake, renew_at, state_at

__all__ = [
    "CHALLENGES",
    "HTTP_01",
    "TLS_ALPN_01",
    "AcmeSettings",
    "CertInfo",
    "CertificateFiles",
    "ChallengeBoard",
    "Issued",
    "Issuer",
    "RenewalPolicy",
    "after_failure",
    "backoff",
    "check_pair",
    "due",
    "due_at",
    "next_wake",
    "read_info",
    "renew_at",
    "self_signed",
    "state_at",
]
