#!/bin/sh
# Runs once, as the PostgreSQL superuser, when the postgres container initialises an empty
# data directory (/docker-entrypoint-initdb.d). The superuser is used here and nowhere
# else: it creates
#   * the application role `autobiz_app` (the name the migrations grant to): owns nothing,
#     NOBYPASSRLS, so every tenant table's FORCE ROW LEVEL SECURITY applies to it;
#   * the owner role (AUTOBIZ_OWNER_ROLE): owns the database and, through `autobiz db
#     migrate`, every table. NOSUPERUSER, NOCREATEDB. BYPASSRLS because it is the named
#     cross-tenant path (autobiz.db.Database.admin: tenant sync, approver keys, closeout
#     reruns), which the forced row-level security would otherwise filter; only the
#     migrate job holds its password. CREATEROLE only because migration 0001 runs
#     `CREATE ROLE autobiz_app` (a no-op here, the role exists, but PostgreSQL checks the
#     privilege first); on PostgreSQL 16 (the image compose pins) it gives no power over
#     roles the owner did not create: none, here.
# Idempotent: run again (e.g. to rotate the passwords) it only updates the roles.
set -eu
: "${AUTOBIZ_DB:=autobiz}"
: "${AUTOBIZ_OWNER_ROLE:=autobiz_owner}"
: "${AUTOBIZ_OWNER_PASSWORD:?set AUTOBIZ_OWNER_PASSWORD}"
: "${AUTOBIZ_APP_PASSWORD:?set AUTOBIZ_APP_PASSWORD}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname postgres \
    -v db="$AUTOBIZ_DB" -v owner="$AUTOBIZ_OWNER_ROLE" \
    -v owner_password="$AUTOBIZ_OWNER_PASSWORD" -v app_password="$AUTOBIZ_APP_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE autobiz_app LOGIN'
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'autobiz_app') \gexec
ALTER ROLE autobiz_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    NOINHERIT PASSWORD :'app_password';

SELECT format('CREATE ROLE %I LOGIN', :'owner')
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
ALTER ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION BYPASSRLS
    PASSWORD :'owner_password';

SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO autobiz_app;

\connect :"db"
-- PostgreSQL 15: the public schema belongs to the database owner, PUBLIC may not create.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
