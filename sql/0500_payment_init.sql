-- payment: the simulated gateway's ledger. Invariants held by constraints, not
-- by code: at most one successful charge per order, ever (charges_one_capture),
-- and refunds never above the charge (refunded_won <= amount_won). Every
-- gateway call is an attempt row, keyed by the command that caused it.

CREATE TABLE payment.inbox (
    msg_id      text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON payment.inbox (received_at);

CREATE TABLE payment.outbox (
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
ALTER TABLE payment.outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);

CREATE TABLE payment.charges (
    charge_id    uuid PRIMARY KEY,
    order_id     uuid NOT NULL,
    saga_id      uuid NOT NULL,
    attempt_key  text NOT NULL,            -- '<saga_id>:<step>:<attempt>'
    status       text NOT NULL CHECK (status IN ('CAPTURED', 'DECLINED', 'FAILED')),
    amount_won   bigint NOT NULL CHECK (amount_won > 0),
    refunded_won bigint NOT NULL DEFAULT 0 CHECK (refunded_won >= 0 AND refunded_won <= amount_won),
    method       text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    UNIQUE (attempt_key)
);
CREATE UNIQUE INDEX charges_one_capture ON payment.charges (order_id) WHERE status = 'CAPTURED';
CREATE INDEX charges_order ON payment.charges (order_id);

CREATE TABLE payment.refunds (
    refund_id  uuid PRIMARY KEY,
    order_id   uuid NOT NULL,
    saga_id    uuid NOT NULL,
    refund_key text NOT NULL,              -- '<saga_id>:<step>'
    charge_id  uuid REFERENCES payment.charges, -- NULL: nothing was charged (a void)
    amount_won bigint NOT NULL CHECK (amount_won >= 0),
    reason     text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    UNIQUE (order_id, refund_key)
);
CREATE INDEX refunds_saga ON payment.refunds (order_id, saga_id);
