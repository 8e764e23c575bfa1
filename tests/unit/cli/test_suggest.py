"""The nearest app for a typo, and the command line corrected."""

from roost.cli.suggest import corrected, nearest, with_suggestion
from roost.errors import NotFound, RoostError


def test_nearest_finds_a_typo_and_ignores_strangers() -> None:
    names = ["flask-hello", "fastapi-hello", "django-hello"]
    assert nearest("flask-helo", names) == "flask-hello"
    assert nearest("fastapi-hell", names) == "fastapi-hello"
    assert nearest("zzz", names) is None


def test_the_corrected_command_replaces_only_the_app() -> None:
    assert corrected(["logs", "flask-helo", "-n", "5"], "flask-helo", "flask-hello") == "roost logs flask-hello -n 5"
    assert corrected(["env", "my app", "list"], "my app", "my-app") == "roost env my-app list"


def test_only_an_unknown_app_gets_a_suggestion() -> None:
    unknown = NotFound("no app named 'flask-helo'", hint="`roost list` shows the apps there are")
    hinted = with_suggestion(unknown, lambda: ["flask-hello"], ["info", "flask-helo"])
    assert hinted.hint == "did you mean 'flask-hello'? roost info flask-hello"
    other = NotFound("no deployment 'ab12'", hint="x")
    assert with_suggestion(other, lambda: ["flask-hello"], ["promote", "ab12"]) is other


def test_a_failing_listing_keeps_the_original_error() -> None:
    unknown = NotFound("no app named 'x'", hint="h")

    def broken() -> list[str]:
        raise RoostError("daemon gone")

    assert with_suggestion(unknown, broken, ["info", "x"]) is unknown
