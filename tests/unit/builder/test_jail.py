"""The builder's side of a jailed build: what a stop says, and how a tree is given back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from roost.builder.fs import chown_tree
from roost.builder.jail import BuildLimit, Stop


def test_a_stop_names_the_limit_and_the_flag_that_raises_it() -> None:
    line = Stop(BuildLimit.PIDS, "512 processes: 488 fork(s) refused").line()
    assert line == (
        "stopped by the build pids limit (512 processes: 488 fork(s) refused); raise it with `roost serve --build-pids`"
    )
    assert "--build-memory" in Stop(BuildLimit.MEMORY, "2G").line()
    assert "--build-timeout" in Stop(BuildLimit.TIME, "15m").line()


def test_sealing_takes_write_and_set_id_bits_away_and_never_follows_a_link(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    module = tree / "pkg" / "mod.py"
    module.write_text("x = 1\n")
    module.chmod(0o6777)
    (tree / "pkg").chmod(0o777)
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    outside.chmod(0o666)
    (tree / "link").symlink_to(outside)

    chown_tree(tree, os.geteuid(), os.getegid(), seal=True)

    assert stat.S_IMODE(module.stat().st_mode) == 0o755
    assert stat.S_IMODE((tree / "pkg").stat().st_mode) == 0o755
    assert stat.S_IMODE(outside.stat().st_mode) == 0o666  # the link's target is not the build's
