"""The output tail's episodes: what a crash may quote once the instance was marked busy."""

from roost.runtime.output import Output


def output(tail_lines: int = 20) -> tuple[Output, list[str]]:
    seen: list[str] = []
    return Output(seen.append, tail_lines=tail_lines), seen


def test_never_marked_quotes_the_whole_tail() -> None:
    out, seen = output()
    for text in ("Traceback (most recent call last):", "", "KeyError: 'x'"):
        out.log(text)
    assert out.since_mark() == ["Traceback (most recent call last):", "KeyError: 'x'"]
    assert seen == ["Traceback (most recent call last):", "", "KeyError: 'x'"]  # the log gets blank lines too


def test_lines_before_the_mark_are_an_older_episode() -> None:
    out, _ = output()
    out.log("KeyError: 'an old request'")
    out.mark()
    assert out.since_mark() == []
    out.log("loading the big file")
    out.log("   ")
    assert out.since_mark() == ["loading the big file"]
    assert list(out.tail) == ["KeyError: 'an old request'", "loading the big file"]


def test_more_lines_since_the_mark_than_the_tail_holds() -> None:
    out, _ = output(tail_lines=3)
    out.log("old")
    out.mark()
    for number in range(5):
        out.log(f"new {number}")
    assert out.since_mark() == ["new 2", "new 3", "new 4"]
