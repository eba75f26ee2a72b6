"""audit events sealed by the database at commit: an unsealed event keeps its seal input until sealed

Revision ID: 0996
Revises: 0995
Create Date: 2026-11-29 19:00:00

On PostgreSQL a committing transaction hands its new audit events to `audit_append()`, sent with its
COMMIT: the function tries the chain head's lock (the same advisory lock as before, without waiting)
and, when it gets it, reads the head, seals the committed events still waiting (oldest first), then
this transaction's, and inserts the new ones sealed; else it inserts them unsealed. The hash is
computed in the database from the event's seal input: its canonical JSON as the application writes
it (audit/models.py `canonical()`), with U+0001 where the previous hash goes and U+0002 where the
seq goes (JSON never holds those characters raw). An unsealed event keeps its seal input until its
seal clears it; a sealed event has none. `verify()` still recomputes every hash from the columns.

The append-only trigger now clears the seal input when it lets a seal through (the application role
needs no privilege on the column, and a sealer of an older version, which sets only the three seal
columns, still works during a rolling upgrade).

Review before merging: one nullable column (no rewrite), two functions, the trigger function replaced.
"""
from alembic import op
import sqlalchemy as sa


revision = '0996'
down_revision = '0995'
branch_labels = None
depends_on = None

_CONTENT = ("id", "occurred_at", "organisation_id", "client_id", "user_id", "action", "resource_type",
            "resource_id", "outcome", "request_id")
_INSERTED = (*_CONTENT, "details")
# An event as the application sends it (audit/sealing.py `_row`): `details` as JSON text (a nested
# JSON value would be unescaped on the way, and a \u0000 in it refused).
_ROW_TYPE = ("id uuid, occurred_at timestamptz, organisation_id uuid, client_id varchar, user_id varchar, "
             "action varchar, resource_type varchar, resource_id varchar, outcome varchar, request_id varchar, "
             "details text, seal_input text")


def _trigger(clears_input: bool) -> str:
    return """
    CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE'
           AND OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
           AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
           AND ({new}, NEW.details::text) IS NOT DISTINCT FROM ({old}, OLD.details::text) THEN{clears}
            RETURN NEW;  -- the seal: set once, nothing else changed
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$
    """.format(new=", ".join(f"NEW.{c}" for c in _CONTENT), old=", ".join(f"OLD.{c}" for c in _CONTENT),
               clears="\n            NEW.seal_input := NULL;  -- the seal input goes with the seal" if clears_input
               else "")


# The hash of an event at (seq, after prev_hash), from its seal input: audit/models.py `canonical()`.
# audit_append has the expression inline (a call of the SQL function from PL/pgSQL costs more than the
# hash); audit_seal_digest gives the same one to tests and to an administrator's query.
_DIGEST_OF = ("encode(sha256(convert_to(replace(replace({input}, chr(1), '\"' || {prev} || '\"'), chr(2), "
              "{seq}::text), 'UTF8')), 'hex')")
_DIGEST = """
    CREATE FUNCTION audit_seal_digest(seal_input text, seq bigint, prev_hash varchar) RETURNS varchar
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT {digest}
    $$
""".format(digest=_DIGEST_OF.format(input="seal_input", prev="prev_hash", seq="seq"))

# The lock key is audit/sealing.py CHAIN_LOCK. Each statement of this (volatile) function reads with a
# snapshot of its own: the head is read after the lock is held, so it is the newest head committed.
_APPEND = """
    CREATE FUNCTION audit_append(events json, flushed uuid[])
    RETURNS TABLE (sealed_id uuid, sealed_seq bigint, sealed_prev_hash varchar, sealed_hash varchar)
    LANGUAGE plpgsql
    -- its statements' plans are made once per connection (a custom plan per call costs more than the
    -- call); the built-in functions it calls cannot be shadowed by a schema earlier in a search path
    SET plan_cache_mode = force_generic_plan
    SET search_path = pg_catalog, public AS $$
    DECLARE
        head_seq bigint;
        head_hash varchar;
        waiting record;
    BEGIN
        IF NOT pg_try_advisory_xact_lock(418581342580) THEN
            -- the head is taken: the new events wait unsealed, with their seal input, for the next sealer
            INSERT INTO audit_events ({inserted}, seal_input)
            SELECT {inserted_e}, e.seal_input FROM json_to_recordset(events) AS e({row_type});
            RETURN;
        END IF;
        SELECT a.seq, a.hash INTO head_seq, head_hash
          FROM audit_events a WHERE a.seq = (SELECT max(b.seq) FROM audit_events b);
        IF head_seq IS NULL THEN
            head_seq := 0;
            head_hash := repeat('0', 64);
        END IF;
        -- committed events waiting (oldest first, a batch at most), then this transaction's flushed ones
        -- in their order; one without a seal input (older than this revision) is left to `audit seal`
        FOR waiting IN
            (SELECT a.id, a.seal_input, 0 AS part, 0::bigint AS n, a.occurred_at FROM audit_events a
              WHERE a.seq IS NULL AND a.seal_input IS NOT NULL AND a.id <> ALL (flushed)
              ORDER BY a.occurred_at, a.id LIMIT 1000)
            UNION ALL
            (SELECT a.id, a.seal_input, 1, f.n, a.occurred_at FROM unnest(flushed) WITH ORDINALITY AS f(id, n)
               JOIN audit_events a ON a.id = f.id WHERE a.seq IS NULL AND a.seal_input IS NOT NULL)
            ORDER BY part, n, occurred_at, id
        LOOP
            sealed_id := waiting.id;
            sealed_seq := head_seq + 1;
            sealed_prev_hash := head_hash;
            sealed_hash := {digest};
            -- the trigger clears the seal input
            UPDATE audit_events SET seq = sealed_seq, prev_hash = sealed_prev_hash, hash = sealed_hash
             WHERE id = waiting.id;
            RETURN NEXT;
            head_seq := sealed_seq;
            head_hash := sealed_hash;
        END LOOP;
        -- the new events, in their order, inserted sealed
        FOR waiting IN SELECT e.* FROM json_array_elements(events) WITH ORDINALITY AS x(event, n),
                                       json_to_record(x.event) AS e({row_type})
                        ORDER BY x.n
        LOOP
            sealed_id := waiting.id;
            sealed_seq := head_seq + 1;
            sealed_prev_hash := head_hash;
            sealed_hash := {digest};
            INSERT INTO audit_events ({inserted}, seq, prev_hash, hash)
            VALUES ({inserted_w}, sealed_seq, sealed_prev_hash, sealed_hash);
            RETURN NEXT;
            head_seq := sealed_seq;
            head_hash := sealed_hash;
        END LOOP;
    END;
    $$
""".format(inserted=", ".join(_INSERTED), inserted_e=", ".join(f"e.{c}" for c in _CONTENT) + ", e.details::json",
           inserted_w=", ".join(f"waiting.{c}" for c in _CONTENT) + ", waiting.details::json",
           row_type=_ROW_TYPE,
           digest=_DIGEST_OF.format(input="waiting.seal_input", prev="head_hash", seq="sealed_seq"))


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seal_input', sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_trigger(clears_input=True))
        op.execute(_DIGEST)
        op.execute(_APPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_append(json, uuid[])")
        op.execute("DROP FUNCTION audit_seal_digest(text, bigint, varchar)")
        op.execute(_trigger(clears_input=False))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('seal_input')
