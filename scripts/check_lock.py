#!/usr/bin/env python3
"""Check that lock files install on a machine that has never seen them.

A lock line must be ``name==version`` from the package index: a URL, a local path, ``@`` or ``-e`` installs only on
the machine that wrote it (and a venv cached by the lock's hash hides that). With ``--resolve`` each lock is also
resolved against the index in a dry run that ignores whatever is installed, so a pin the index does not serve fails
here rather than on a user's fresh machine. Standard library only: it runs before any venv exists.

    python3 scripts/check_lock.py requirements.lock src/visionloop/labeling/label-studio.lock [--resolve]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.!+_-]*$")


def bad_lines(lock: Path) -> list[str]:
    """Every line that is neither blank, a comment, nor an exact ``name==version`` pin."""
    bad = []
    for number, raw in enumerate(lock.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#") and not PIN.match(line):
            bad.append(f"{lock}:{number}: {line}")
    return bad


def resolves(lock: Path) -> bool:
    """Resolve ``lock`` against the index as a fresh install would (nothing is installed)."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "-r", str(lock)]
    print(f"resolving {lock} against the package index (dry run)...", flush=True)
    return subprocess.run(command, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path)
    parser.add_argument("--resolve", action="store_true", help="also resolve each lock against the index")
    args = parser.parse_args(argv)
    failures = [line for lock in args.locks for line in bad_lines(lock)]
    if failures:
        print("lock lines a fresh machine cannot install (pin name==version from the index):", file=sys.stderr)
        print("\n".join(f"  {line}" for line in failures), file=sys.stderr)
        return 1
    if args.resolve and not all(resolves(lock) for lock in args.locks):
        print("a lock does not resolve against the package index", file=sys.stderr)
        return 1
    print(f"locks ok: {', '.join(str(lock) for lock in args.locks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
