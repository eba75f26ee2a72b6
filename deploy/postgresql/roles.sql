-- Least-privilege roles for the referral API (docs/deploy.md, PostgreSQL). Run once per database
-- (the records database, and the key store database apart) as a superuser, connected to it:
--
--   psql -v ON_ERROR_STOP=1 -d referral -f deploy/postgresql/roles.sql
--   psql -v ON_ERROR_STOP=1 -d referral_keys -f deploy/postgresql/roles.sql
--
-- Two roles: the migration role owns the schema and runs `referral-api db upgrade` and `keys init`;
-- the app role serves (`referral-api serve`, the worker, the scheduled jobs) and owns nothing.
-- Other names: psql -v owner_role=... -v app_role=... . Set passwords afterwards with \password:
-- never in this file. The roles are created when missing (they are cluster-wide).

\if :{?owner_role}
\else
  \set owner_role referral_migrator
\endif
\if :{?app_role}
\else
  \set app_role referral_app
\endif

SELECT format('CREATE ROLE %I LOGIN', :'owner_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner_role') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_role') \gexec

-- Nobody else may connect or create anything here; the migration role owns the schema.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I, %I', current_database(), :'owner_role', :'app_role') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"owner_role";
GRANT USAGE ON SCHEMA public TO :"app_role";

-- Tables that later migrations create are readable and writable by the app at once; grants.sql
-- (run after every `db upgrade`) takes back what the app must never do.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";
