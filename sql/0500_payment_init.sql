-- payment: the simulated gateway's ledger. Invariants held by constraints, not
-- by code: at most one successful charge per order, ever (charges_one_capture),
-- and refunds never above the charge (refunded_won <= amount_won). Every
-- gateway call is an attempt row, keyed by the command that caused it.

-- inbox and outbox: sql/shared/inbox_outbox.sql (applied to every schema).

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
