"""Outputs that are not a terminal get plain lines: Ultralytics' real progress bar and Ray's coloured prefixes
come out without escape sequences, a redrawn bar as one line with its final figures."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from visionloop.core.plain_output import PlainTextStream, last_frame

pytestmark = pytest.mark.usefixtures("offline_ultralytics")


def test_escapes_go_and_a_redrawn_line_is_written_once_as_it_last_stood() -> None:
    target = io.StringIO()
    stream = PlainTextStream(target)
    stream.write("\x1b[33m(raylet)\x1b[0m a warning\n")
    stream.write("\r\x1b[Ktrain: 28% 162/560")
    assert target.getvalue() == "(raylet) a warning\n"  # the bar is held while it is redrawn
    stream.write("\r\x1b[Ktrain: 100% 560/560")
    stream.write("\n")
    stream.write("plain text passes at once")
    assert target.getvalue() == "(raylet) a warning\ntrain: 100% 560/560\nplain text passes at once"
    stream.write("\n\rtrain: 5%")
    stream.close_line()
    assert target.getvalue().endswith("at once\ntrain: 5%\n")
    assert last_frame("\r\r  \r") == "" and not stream.isatty()


def test_ultralytics_progress_bar_becomes_one_plain_line() -> None:
    from ultralytics.utils import colorstr
    from ultralytics.utils.tqdm import TQDM

    target = io.StringIO()
    stream = PlainTextStream(target)
    for _ in TQDM(range(50), desc=colorstr("train: ") + "Caching images", file=stream, disable=False, mininterval=0):
        pass
    text = target.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert text.count("\n") == 1 and "train: Caching images" in text and "50/50" in text


def test_the_cli_piped_to_a_file_writes_no_escape_sequences(tmp_path: object) -> None:
    """A command whose output would carry colour codes (Rich forced to colour, as a library might) prints plain."""
    code = (
        "import sys\n"
        "from visionloop.core.plain_output import plain_when_not_a_terminal\n"
        "plain_when_not_a_terminal()\n"
        "from rich.console import Console\n"
        "Console(file=sys.stdout, force_terminal=True).print('[red]alarm[/] raised')\n"
        "sys.stderr.write('\\r\\x1b[Kstep 1\\r\\x1b[Kstep 2\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "alarm raised\n" and done.stderr == "step 2\n"
