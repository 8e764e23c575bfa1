"""The first program of every build subprocess when the host has cgroups: join the builds' group,
then execute the build command. Run as `python -I -S enter.py PROCS... -- ARGV...`.

Joining before the command exists means nothing it forks (uv's resolver, compileall's
workers, a package's setup.py) can be outside the group that the next `roost serve` kills.
Standalone on purpose: `-I -S` keeps PYTHON* variables and site-packages out; it imports
the standard library only, never roost.
"""

from __future__ import annotations

import os
import sys

EXIT_CANNOT_ENTER = 126


def main(args: list[str]) -> None:
    if "--" not in args:
        sys.stderr.write("roost-enter: usage: enter.py PROCS... -- ARGV...\n")
        sys.stderr.flush()
        os._exit(EXIT_CANNOT_ENTER)
    split = args.index("--")
    procs_files, argv = args[:split], args[split + 1 :]
    pid = str(os.getpid())
    try:
        for path in procs_files:
            with open(path, "w") as handle:
                handle.write(pid)
        os.execvp(argv[0], argv)  # noqa: S606 - an argv list Roost built, never a shell line
    except (OSError, IndexError) as exc:
        sys.stderr.write(f"roost-enter: cannot run the build step in its cgroup: {exc}\n")
        sys.stderr.flush()
        os._exit(EXIT_CANNOT_ENTER)


if __name__ == "__main__":
    main(sys.argv[1:])
