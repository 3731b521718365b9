-- catalog: products and their stock, with the service's inbox and outbox.
-- Applied by scripts/lib as the catalog role; the schema already exists.

CREATE TABLE catalog.inbox (
    msg_id      text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON catalog.inbox (received_at);

CREATE TABLE catalog.outbox (
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

-- One notification per inserting statement wakes the relays of this schema.
CREATE FUNCTION catalog.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON catalog.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.outbox_notify();

CREATE TABLE catalog.products (
    product_id      uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price_won       bigint NOT NULL CHECK (price_won > 0),
    details         text NOT NULL,
    category        text NOT NULL CHECK (length(category) BETWEEN 1 AND 100),
    stock_available bigint NOT NULL CHECK (stock_available >= 0),
    created_at      timestamptz NOT NULL
);
CREATE INDEX products_category ON catalog.products (category, product_id);

-- Queue-like churn: every row is deleted or rewritten within seconds, so vacuum
-- after a fixed number of dead rows rather than a fraction of the table.
ALTER TABLE catalog.outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);
