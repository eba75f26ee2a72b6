"""What a connection sends to PostgreSQL, read from libpq's own trace of the protocol.

    from bench import pgtrace

    with pgtrace.traffic(engine) as seen:      # every connection the engine's pool hands out
        client.post(...)
    with pgtrace.traced(dbapi_connection) as seen:   # one psycopg connection
        ...
    seen.statements, seen.commits, seen.round_trips

A statement is a Parse or a simple Query message (its text kept), a commit a COMMIT among them, a
round trip a ReadyForQuery answer (one per Sync or simple Query: what the client waits for).
Statements sent by the driver directly (BEGIN, COMMIT, a function call outside SQLAlchemy) count as
well as SQLAlchemy's; nothing is prepared while traced (a prepared statement's execution sends no
Parse, so no text).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# A message starts a line "F|B<TAB>length<TAB>"; a statement's text may span lines.
_MESSAGE = re.compile(r"^[FB]\t\d+\t", re.M)
_STATEMENT = re.compile(r'^F\t\d+\t(?:Parse\t "[^"]*" "(.*)" \d+|Query\t "(.*)")', re.S)
_ANSWERED = re.compile(r"^B\t\d+\tReadyForQuery\b")


@dataclass
class Traffic:
    statements: list[str] = field(default_factory=list)  # their texts, whitespace collapsed
    round_trips: int = 0

    @property
    def commits(self) -> int:
        return sum(statement == "COMMIT" for statement in self.statements)

    def add(self, trace: str) -> None:
        starts = [m.start() for m in _MESSAGE.finditer(trace)] + [len(trace)]
        for start, end in itertools.pairwise(starts):
            message = trace[start:end]
            found = _STATEMENT.match(message)
            if found:
                self.statements.append(" ".join((found.group(1) or found.group(2)).split()))
            elif _ANSWERED.match(message):
                self.round_trips += 1


@contextlib.contextmanager
def traced(dbapi_connection: Any, seen: Traffic | None = None) -> Iterator[Traffic]:
    """What the block sends on one psycopg connection (added to `seen` when given)."""
    from psycopg import pq

    seen = seen if seen is not None else Traffic()
    pgconn, threshold = dbapi_connection.pgconn, dbapi_connection.prepare_threshold
    dbapi_connection.prepare_threshold = None
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield seen
        finally:
            pgconn.untrace()  # flushes libpq's stream
            dbapi_connection.prepare_threshold = threshold
            trace.seek(0)
            seen.add(trace.read())


@contextlib.contextmanager
def traffic(engine: Any) -> Iterator[Traffic]:
    """What the block sends through `engine` (psycopg), every connection it checks out traced."""
    from sqlalchemy import event

    seen = Traffic()
    open_traces: dict[int, contextlib.ExitStack] = {}

    def start(dbapi_connection: Any, *_args: Any) -> None:
        stack = open_traces[id(dbapi_connection)] = contextlib.ExitStack()
        stack.enter_context(traced(dbapi_connection, seen))

    def stop(dbapi_connection: Any, *_args: Any) -> None:
        stack = open_traces.pop(id(dbapi_connection), None)
        if stack is not None:
            stack.close()

    event.listen(engine, "checkout", start)
    event.listen(engine, "checkin", stop)
    try:
        yield seen
    finally:
        event.remove(engine, "checkout", start)
        event.remove(engine, "checkin", stop)
        for stack in list(open_traces.values()):
            stack.close()
