"""Per-app logs: size-capped rotation, filters by time and deployment, and following without
repeating or silently losing a line."""

import asyncio
import time
from pathlib import Path

from roost.applog import REQUEST_SOURCE, LogBook, LogLine, LogTail, RequestLine, parse_line
from roost.applog import _format as format_line


def texts(lines: list[LogLine]) -> list[str]:
    return [line.text for line in lines]


def test_rotation_caps_the_size_and_keeps_the_newest_lines_in_order(tmp_path: Path) -> None:
    book = LogBook(tmp_path, limit_bytes=2000, backups=2)
    try:
        for n in range(200):
            book.write("app", "dep1", "inst", f"line {n:03d} " + "x" * 40)
    finally:
        book.close()
    files = book.files("app")
    assert [p.name for p in files] == ["app.log.2", "app.log.1", "app.log"]
    assert all(p.stat().st_size <= 2000 for p in files)
    kept = texts(book.read("app"))
    assert kept[-1].startswith("line 199 ")
    numbers = [int(text.split()[1]) for text in kept]
    assert numbers == list(range(numbers[0], 200))  # contiguous: nothing lost inside what is kept
    assert numbers[0] > 0  # the oldest were rotated away
    assert len(kept) * 60 <= 3 * 2000


def test_read_filters_by_time_and_by_deployment(tmp_path: Path) -> None:
    book = LogBook(tmp_path)
    log = book.app("app")
    now = time.time()
    log.write("old", "inst", "an hour ago", at=now - 3600)
    log.write("dep1", "inst", "five minutes ago", at=now - 300)
    log.write("dep2", "zygote", "just now", at=now)
    book.close()
    assert texts(book.read("app", since=now - 600)) == ["five minutes ago", "just now"]
    assert texts(book.read("app", deployment="dep2")) == ["just now"]
    assert texts(book.read("app", since=now - 600, deployment="old")) == []
    assert [(line.deployment, line.source) for line in book.read("app")][-1] == ("dep2", "zygote")
    assert book.read("nothing-here") == []


def test_a_line_being_written_is_left_to_the_follower(tmp_path: Path) -> None:
    book = LogBook(tmp_path)
    book.write("app", "dep1", "inst", "whole")
    book.close()
    with (tmp_path / "app" / "app.log").open("a") as handle:
        handle.write("2026-01-01T00:00:00.000000Z\tdep1\tinst\thalf a li")
    assert texts(book.read("app")) == ["whole"]


def test_following_sees_new_lines_as_the_file_has_them_until_stopped(tmp_path: Path) -> None:
    book = LogBook(tmp_path)
    seen: list[LogLine] = []
    stop = book.follow("app", seen.append)
    book.write("app", "dep1", "inst", "tab\there\n")
    book.write("other", "dep9", "inst", "not mine")
    stop()
    book.write("app", "dep1", "inst", "after stop")
    assert seen == book.read("app")[:1]
    assert texts(seen) == ["tab    here"]
    book.close()


async def test_follow_then_read_neither_repeats_nor_loses_a_line(tmp_path: Path) -> None:
    """What the API does for `roost logs -f`: follow, read (lines arrive meanwhile), drop the overlap."""
    book = LogBook(tmp_path)
    for n in range(3):
        book.write("app", "dep1", "inst", f"before {n}")
    tail = LogTail(100)
    stop = book.follow("app", tail)
    book.write("app", "dep1", "inst", "during the read")  # both in the file and in the buffer
    book.write("app", "dep1", "inst", "before 0")  # the same text again is still a new line
    read = book.read("app")
    book.write("app", "dep1", "inst", "after the read")
    tail.drop_overlap(read)
    shown = texts(read) + texts(await tail.take())
    assert shown == ["before 0", "before 1", "before 2", "during the read", "before 0", "after the read"]
    stop()
    book.close()


async def test_a_full_buffer_says_how_many_lines_it_skipped(tmp_path: Path) -> None:
    book = LogBook(tmp_path)
    tail = LogTail(2, deployment="dep1")
    stop = book.follow("app", tail)
    for n in range(5):
        book.write("app", "dep1", "inst", f"line {n}")
    book.write("app", "dep2", "inst", "another deployment")
    taken = await tail.take()
    assert texts(taken)[0].startswith("3 line(s) skipped")
    assert taken[0].source == "roost"
    assert texts(taken)[1:] == ["line 0", "line 1"]
    waiting = asyncio.ensure_future(tail.take())
    await asyncio.sleep(0)
    assert not waiting.done()
    book.write("app", "dep1", "inst", "line 5")
    assert texts(await waiting) == ["line 5"]
    stop()
    book.close()


def test_a_request_line_reads_back_and_goes_to_json() -> None:
    line = RequestLine("GET", "/hello world", 200, 0.0031, "warm", "i-ab12cd")
    assert line.text() == "GET /hello%20world 200 3.1ms warm i-ab12cd"
    parsed = RequestLine.parse(line.text())
    assert parsed is not None
    assert (parsed.status, parsed.start, parsed.instance) == (200, "warm", "i-ab12cd")
    wire = LogLine(1.0, "dep1", REQUEST_SOURCE, line.text()).to_wire()
    assert (wire["kind"], wire["status"], wire["duration_ms"], wire["path"]) == ("request", 200, 3.1, "/hello%20world")
    app_line = LogLine(1.0, "dep1", "i-ab12cd", "GET / 200 3.1ms warm i-x").to_wire()
    assert app_line["kind"] == "app" and "status" not in app_line  # an app printing the same words is not a request
    assert RequestLine.parse("Traceback (most recent call last):") is None


def test_a_line_stamp_reads_back_as_its_time_within_a_microsecond_across_seconds() -> None:
    start = 1_765_000_000.0
    times = [start + k / 7 for k in range(30)] + [start + 0.999_999, start + 1.0, start + 1.000_001, time.time()]
    for at in times:
        line = parse_line(format_line(at, "d1", "stdout", "hello").decode())
        assert line is not None and line.text == "hello", at
        assert abs(line.at - at) <= 1.5e-6, (at, line.at)


def test_a_request_path_with_white_space_stays_one_field() -> None:
    text = RequestLine("GET", "/a b\tc", 200, 0.0012, "hot", "i1").text()
    assert text == "GET /a%20b%20c 200 1.2ms hot i1"
    assert RequestLine.parse(text) == RequestLine("GET", "/a%20b%20c", 200, 0.0012, "hot", "i1")
