"""``python -m visionloop.cli``: the same command as ``visionloop``."""

from visionloop.cli.app import main

main()
