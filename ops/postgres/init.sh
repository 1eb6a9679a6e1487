#!/bin/sh
# The compose stack's PostgreSQL runs this once, on its first start (an empty data directory).
# - The warehouse database: no role may connect by default; `trackway warehouse grant` (the
#   warehouse-init service, on every `docker compose up`) creates one role per job and lets each connect.
# - Airflow's, Superset's and Metabase's metadata databases, each owned by a role of its own that cannot
#   reach the warehouse (Superset and Metabase read it as trackway_reader, docs/bi.md).
# psql's \getenv reads the password, so it is never on a command line; were it unset, :'airflow_password'
# would stay as it is and the statement would fail (ON_ERROR_STOP) instead of making a role without one.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
REVOKE CONNECT, TEMPORARY ON DATABASE warehouse FROM PUBLIC;

\getenv airflow_password AIRFLOW_DB_PASSWORD
CREATE ROLE airflow WITH LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;

\getenv superset_password SUPERSET_DB_PASSWORD
CREATE ROLE superset WITH LOGIN PASSWORD :'superset_password';
CREATE DATABASE superset OWNER superset;
REVOKE ALL ON DATABASE superset FROM PUBLIC;

\getenv metabase_password METABASE_DB_PASSWORD
CREATE ROLE metabase WITH LOGIN PASSWORD :'metabase_password';
CREATE DATABASE metabase OWNER metabase;
REVOKE ALL ON DATABASE metabase FROM PUBLIC;
SQL
