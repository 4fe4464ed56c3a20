-- The read-only role Grafana's PostgreSQL datasource logs in as (dashboards/provisioning/datasources/switchboard.yaml):
-- it may read the ledger and nothing else (not the key hashes, not the policy history). Idempotent; run after the
-- gateway has created the ledger (its migrations run at start) with
--   psql -v ON_ERROR_STOP=1 -v password="$SWITCHBOARD_GRAFANA_DB_PASSWORD" -f grafana-reader.sql
SELECT format('CREATE ROLE grafana_reader LOGIN PASSWORD %L', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') \gexec
SELECT format('ALTER ROLE grafana_reader PASSWORD %L', :'password') \gexec
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ledger TO grafana_reader;
