-- delivery: one delivery per paid order and its status history (one row per
-- status reached, so each transition is idempotent per (order, status)).

-- inbox and outbox: sql/shared/inbox_outbox.sql (applied to every schema).

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
