"""Admin API package: the FastAPI app and the auth middleware that guards it."""

from roost.api.asgi import create_api
from roost.api.auth import AUDIT_KIND, Authenticator, AuthMiddleware, DoorSettings, Identity
from roost.api.exposure import check_exposure
from roost.api.throttle import ThrottlePolicy
from roost.clientaddr import parse_networks

__all__ = [
    "AUDIT_KIND",
    "AuthMiddleware",
    "Authenticator",
    "DoorSettings",
    "Identity",
    "ThrottlePolicy",
    "check_exposure",
    "create_api",
    "parse_networks",
]
