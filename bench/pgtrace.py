"""What a request sends to PostgreSQL, counted from libpq's own trace of the protocol.

    from bench import pgtrace

    with pgtrace.traffic(engine) as seen:
        client.post(...)
    print(seen)  # Traffic(statements=5, commits=1, round_trips=2)

Every psycopg connection the engine's pool hands out inside the block is traced (`PGconn.trace`):
a statement is a Parse or a simple Query message, a commit a COMMIT among them, a round trip a
ReadyForQuery answer (one per Sync or simple Query: what the client waits for). Statements sent by
the driver directly (BEGIN, COMMIT, a function call outside SQLAlchemy) count as well as SQLAlchemy's.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass
class Traffic:
    statements: int = 0
    commits: int = 0
    round_trips: int = 0

    def add(self, trace: TextIO) -> None:
        trace.seek(0)
        for line in trace:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3:  # a message's continuation line
                continue
            direction, message, text = fields[0], fields[2], "\t".join(fields[3:])
            if direction == "F" and message in ("Parse", "Query"):
                self.statements += 1
                self.commits += '"COMMIT"' in text
            elif direction == "B" and message == "ReadyForQuery":
                self.round_trips += 1


@contextlib.contextmanager
def traffic(engine: Any) -> Iterator[Traffic]:
    """Count what the block sends through `engine` (psycopg), connection by connection."""
    from psycopg import pq
    from sqlalchemy import event

    seen = Traffic()
    traced: dict[int, tuple[Any, TextIO, Any]] = {}

    def start(dbapi_connection: Any, *_args: Any) -> None:
        trace = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed by stop)
        dbapi_connection.pgconn.trace(trace.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        # a prepared statement's execution sends no Parse: none is prepared while counted
        traced[id(dbapi_connection)] = (dbapi_connection, trace, dbapi_connection.prepare_threshold)
        dbapi_connection.prepare_threshold = None

    def stop(dbapi_connection: Any, *_args: Any) -> None:
        found = traced.pop(id(dbapi_connection), None)
        if found is not None:
            found[0].pgconn.untrace()  # flushes libpq's stream
            found[0].prepare_threshold = found[2]
            seen.add(found[1])
            found[1].close()

    event.listen(engine, "checkout", start)
    event.listen(engine, "checkin", stop)
    try:
        yield seen
    finally:
        event.remove(engine, "checkout", start)
        event.remove(engine, "checkin", stop)
        for dbapi_connection, *_rest in list(traced.values()):
            stop(dbapi_connection)
