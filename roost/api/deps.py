"""How route handlers reach the use cases (the Control lives on the app's state) and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from roost.api.auth import Identity
from roost.api.scopes import identity_of
from roost.control import Control


def _control(request: Request) -> Control:
    control: Control = request.app.state.control
    return control


ControlDep = Annotated[Control, Depends(_control)]
IdentityDep = Annotated[Identity, Depends(identity_of)]
