"""python -m visionloop.cli.reference DIRECTORY: write the generated reference pages."""

from __future__ import annotations

import sys
from pathlib import Path

from visionloop.cli.reference import write_reference

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m visionloop.cli.reference DIRECTORY")
    for path in write_reference(Path(sys.argv[1])):
        print(f"wrote {path}")
