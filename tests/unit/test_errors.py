import errno
import re
from pathlib import Path

from roost.errors import (
    Conflict,
    DaemonAlreadyRunning,
    NoSpace,
    NotFound,
    RoostError,
    from_wire,
    is_no_space,
    no_space,
)


def test_wire_round_trip_keeps_class_message_and_hint() -> None:
    for error in (NotFound("no app named 'x'", hint="roost list"), DaemonAlreadyRunning("busy", hint="kill it")):
        back = from_wire(error.to_wire(), error.status)
        assert type(back) is type(error)
        assert (back.message, back.hint) == (error.message, error.hint)


def test_unknown_code_becomes_base_error() -> None:
    back = from_wire({"error": "brand_new", "message": "m", "hint": "h"}, 500)
    assert type(back) is RoostError
    assert back.message == "m"


def test_status_codes() -> None:
    assert NotFound("x").status == 404
    assert Conflict("x").status == 409
    assert str(Conflict("taken")) == "taken"


def test_no_space_says_how_much_is_free_and_what_to_do(tmp_path: Path) -> None:
    full = no_space(tmp_path)
    assert (full.status, full.code) == (507, "no_space")
    assert re.fullmatch(r"no space left on the device holding ROOST_HOME \(\d+ MB free\)", full.message)
    assert "roost gc" in full.hint
    assert is_no_space(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_no_space(OSError(errno.EACCES, "Permission denied"))
    assert isinstance(from_wire(full.to_wire(), 507), NoSpace)
