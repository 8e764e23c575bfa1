"""How route handlers reach the use cases: the Control lives on the app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from roost.control import Control


def _control(request: Request) -> Control:
    control: Control = request.app.state.control
    return control


ControlDep = Annotated[Control, Depends(_control)]
