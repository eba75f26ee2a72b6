-- The app role's privileges on what exists now (docs/deploy.md). Run as the migration role after
-- `referral-api db upgrade` (and `keys init` on the key store), every time: it is idempotent.
--
--   psql -v ON_ERROR_STOP=1 -d referral -U referral_migrator -f deploy/postgresql/grants.sql
--
-- The app reads and writes its tables, but the audit trail is append-only for it (no UPDATE,
-- DELETE or TRUNCATE: the triggers of migrations 0201 and 0985 refuse them too, even to the owner)
-- except the seal of an event (its seq, prev_hash and hash, set once from NULL: the trigger lets
-- nothing else through, and clears the event's seal input itself), and the schema version is
-- read-only for it.

\if :{?app_role}
\else
  \set app_role referral_app
\endif

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM :"app_role";

SELECT format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM %I', :'app_role')
 WHERE to_regclass('public.audit_events') IS NOT NULL \gexec
SELECT format('GRANT UPDATE (seq, prev_hash, hash) ON audit_events TO %I', :'app_role')
 WHERE to_regclass('public.audit_events') IS NOT NULL \gexec
SELECT format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM %I', :'app_role')
 WHERE to_regclass('public.alembic_version') IS NOT NULL \gexec
