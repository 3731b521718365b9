-- The inbox and outbox every service schema has (engine/outbox.h), written
-- once. scripts/lib/pg.sh applies it to each schema of the service table
-- (etc/services.tsv) after the numbered migrations, as the schema's role with
-- search_path = that schema, on every `scripts/dev up` and harness start, and
-- so does every `layby-ctl db migrate` (cli/ctl_db.c): so
-- it must stay idempotent, and a service's migrations hold only its business
-- tables. Schemas made before this file (catalog, saga: 0001-0004) have the
-- same tables from their own migrations. A change to these tables is a
-- numbered migration per existing schema, plus the change here for new ones.

-- Ids of the messages whose effects committed: a redelivery is skipped.
CREATE TABLE IF NOT EXISTS inbox (
    msg_id      text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS inbox_received_at ON inbox (received_at);

-- Messages committed with the change they announce, until a relay published
-- them (engine/outbox_relay.c).
CREATE TABLE IF NOT EXISTS outbox (
    id          uuid PRIMARY KEY,          -- Nats-Msg-Id of the published message
    subject     text NOT NULL,
    msg_type    text NOT NULL,             -- Layby-Type
    correlation text NOT NULL,
    causation   text NOT NULL,
    actor       text NOT NULL,
    reply       text NOT NULL,
    traceparent text NOT NULL,
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Queue-like churn: every row is deleted within seconds, so vacuum after a
-- fixed number of dead rows rather than a fraction of the table.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);

-- Both are written by every message and read only by key (or the sweep's
-- and the pruning's indexed ranges): analyzed rarely, not on every
-- autovacuum round (why in 0950_saga_rare_analyze.sql).
ALTER TABLE inbox SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
ALTER TABLE outbox SET (autovacuum_analyze_scale_factor = 1.0, autovacuum_analyze_threshold = 100000);
