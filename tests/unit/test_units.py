import pytest

from roost.units import format_duration, format_size, human_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("128M", 128 * 1024**2),
        ("1G", 1024**3),
        ("512K", 512 * 1024),
        ("10", 10),
        (2048, 2048),
        ("1.5G", int(1.5 * 1024**3)),
        ("64MiB", 64 * 1024**2),
        ("64mb", 64 * 1024**2),
    ],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "12X", "-1", "1.2.3M", True, None, -5, [1]])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="128M"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500ms", 0.5), ("5s", 5.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0), (3, 3.0), (0.25, 0.25)],
)
def test_parse_duration(text: object, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "5", "5 s", "5x", "m5", "s", False, -1])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="500ms"):
        parse_duration(text)


def test_formats_round_trip() -> None:
    assert format_size(parse_size("128M")) == "128M"
    assert format_size(1000) == "1000"
    assert format_duration(parse_duration("5m")) == "5m"
    assert format_duration(0.5) == "500ms"
    assert format_duration(7.5) == "7.5s"


@pytest.mark.parametrize(
    ("size", "expected"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (3 * 1024**3, "3.0 GB")]
)
def test_human_size(size: float, expected: str) -> None:
    assert human_size(size) == expected
