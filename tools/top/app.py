"""The full-screen loop: one frame a second, `q` or Ctrl-C quits and gives the terminal back."""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty

from rich.console import Console
from rich.live import Live

from tools.top.collector import Collector
from tools.top.render import make_layout

REFRESH_S = 1.0


def run(url: str, console: Console | None = None, frames: int | None = None) -> int:
    """Show the dashboard until `q`, Ctrl-C or (for scripted use) `frames` frames."""
    console = console or Console()
    collector = Collector(url)
    fd = sys.stdin.fileno() if sys.stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    if not console.is_terminal:  # piped or scripted: print frames one after another, no screen control
        return _print_frames(collector, console, frames)
    try:
        if fd is not None:
            tty.setcbreak(fd)
        snap = collector.snapshot()
        with Live(make_layout(snap, console.width, console.height), console=console, screen=True,
                  auto_refresh=False) as live:
            shown = 1
            while frames is None or shown < frames:
                deadline = time.monotonic() + REFRESH_S
                while (left := deadline - time.monotonic()) > 0:
                    if fd is None:
                        time.sleep(left)
                        continue
                    r, _, _ = select.select([fd], [], [], left)
                    if r and os.read(fd, 32).lower().startswith(b"q"):
                        return 0
                snap = collector.snapshot()
                live.update(make_layout(snap, console.width, console.height), refresh=True)
                shown += 1
    except KeyboardInterrupt:
        return 0
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return 0


def _print_frames(collector: Collector, console: Console, frames: int | None) -> int:
    shown = 0
    try:
        while frames is None or shown < frames:
            if shown:
                time.sleep(REFRESH_S)
            console.print(make_layout(collector.snapshot(), console.width, console.height), height=console.height)
            shown += 1
    except KeyboardInterrupt:
        pass
    return 0
