"""Progress of long commands on a terminal: count, rate and ETA on stderr, redrawn in place.

Services take a `progress` keyword (this module's `Progress`; None draws nothing) and call `start(total)`
and `advance(n)`; only the command line decides whether anything is shown: `for_command()` gives a
live bar when both stdout and stderr are terminals and `--json` was not asked, else the silent one.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_REDRAW_SECONDS = 0.1


class Progress:
    """A progress line that draws nothing: the base and the silent variant."""

    shown = False  # whether anyone sees the line (a caller skips counting a total nobody reads)

    def __init__(self) -> None:
        self.done = 0
        self.total: int | None = None

    def start(self, total: int | None = None) -> None:
        """Begin (or re-begin) with `total` items, None when not known in advance."""
        self.total = total

    def advance(self, n: int = 1) -> None:
        """Count `n` more items done."""
        self.done += n

    def finish(self) -> None:
        """End the line (nothing for the silent variant)."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.finish()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


class TerminalProgress(Progress):
    """`label  120/500 (24%)  85.3/s  ETA 00:04`, redrawn at most ten times a second."""

    shown = True

    def __init__(self, label: str, *, stream: TextIO, unit: str = "") -> None:
        super().__init__()
        self.label = label
        self.unit = unit
        self.stream = stream
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._width = 0

    def start(self, total: int | None = None) -> None:
        super().start(total)
        self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        super().advance(n)
        self._draw()

    def line(self) -> str:
        """The text of the line as it stands now."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        if self.total is not None:
            share = 100 * self.done // self.total if self.total else 100
            text = f"{self.label}  {self.done}/{self.total}{unit} ({share}%)"
        else:
            text = f"{self.label}  {self.done}{unit}"
        text += f"  {rate:.1f}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f"  ETA {_duration((self.total - self.done) / rate)}"
        elif self.total is not None and self.done >= self.total:
            text += f"  in {_duration(elapsed)}"
        return text

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < _REDRAW_SECONDS:
            return
        self._drawn_at = now
        text = self.line()
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def finish(self) -> None:
        if self.total is None:
            self.total = self.done
        self._draw(force=True)
        self.stream.write("\n")
        self.stream.flush()


def on_terminal() -> bool:
    """True when both stdout and stderr are terminals (a person watching, not a pipe or a log)."""
    return all(getattr(s, "isatty", lambda: False)() for s in (sys.stdout, sys.stderr))


def for_command(label: str, *, as_json: bool = False, unit: str = "") -> Progress:
    """A live line on stderr for a person at a terminal; a silent one with --json or without a TTY."""
    if as_json or not on_terminal():
        return Progress()
    return TerminalProgress(label, stream=sys.stderr, unit=unit)
