-- delivery: one delivery per paid order and its status history (one row per
-- status reached, so each transition is idempotent per (order, status)).

CREATE TABLE delivery.inbox (
    msg_id      text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON delivery.inbox (received_at);

CREATE TABLE delivery.outbox (
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
-- Queue-like churn: vacuum after a fixed number of dead rows.
ALTER TABLE delivery.outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);

CREATE TABLE delivery.deliveries (
    delivery_id uuid PRIMARY KEY,
    order_id    uuid NOT NULL UNIQUE,
    status      text NOT NULL CHECK (status IN ('PREPARING', 'SHIPPING', 'DELIVERED',
                    'RETURN_PICKUP', 'RETURNED', 'CANCELLED')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE delivery.delivery_history (
    delivery_id uuid NOT NULL REFERENCES delivery.deliveries,
    status      text NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (delivery_id, status)
);

-- Orders whose delivery was cancelled before it existed: a late PREPARING
-- for them is refused (a compensation that overtook its command).
CREATE TABLE delivery.voided (
    order_id  uuid PRIMARY KEY,
    at        timestamptz NOT NULL
);
