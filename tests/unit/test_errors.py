from roost.errors import Conflict, DaemonAlreadyRunning, NotFound, RoostError, from_wire


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
