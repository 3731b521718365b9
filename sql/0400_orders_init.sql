-- orders: orders with their lines (name and price snapshotted when the stock
-- was reserved), status history, and the members' address books. Addresses are
-- personal data: sealed with libsodium AEAD (engine/seal.h); only ids, flags
-- and times are plain. Applied as role orders.

-- inbox and outbox: sql/shared/inbox_outbox.sql (applied to every schema).

CREATE TABLE orders.addresses (
    address_id uuid PRIMARY KEY,
    member_id  uuid NOT NULL,
    sealed     bytea NOT NULL,             -- AddressDraft, AD = 'orders.address:<address_id>'
    is_default boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX addresses_member ON orders.addresses (member_id, address_id);
-- One default address per member, whatever races.
CREATE UNIQUE INDEX addresses_one_default ON orders.addresses (member_id) WHERE is_default;

CREATE TABLE orders.orders (
    order_id         uuid PRIMARY KEY,
    member_id        uuid NOT NULL,
    address_id       uuid NOT NULL,
    ship_to          bytea NOT NULL,       -- sealed copy, AD = 'orders.ship_to:<order_id>'
    status           text NOT NULL CHECK (status IN ('PENDING', 'PAYMENT_PENDING', 'PAID',
                         'REJECTED', 'CANCELLED', 'RETURN_REQUESTED', 'RETURNED')),
    total_won        bigint NOT NULL DEFAULT 0 CHECK (total_won >= 0),
    payment_deadline timestamptz,
    reason           text NOT NULL DEFAULT '',
    short_products   uuid[] NOT NULL DEFAULT '{}',
    from_wishlist    boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX orders_member ON orders.orders (member_id, order_id DESC);

-- What the buyer asked for (PENDING) and, from PAYMENT_PENDING on, the
-- reserved name and unit price.
CREATE TABLE orders.order_lines (
    order_id       uuid NOT NULL REFERENCES orders.orders ON DELETE CASCADE,
    line_no        int NOT NULL,
    product_id     uuid NOT NULL,
    quantity       bigint NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    name           text NOT NULL DEFAULT '',
    unit_price_won bigint NOT NULL DEFAULT 0 CHECK (unit_price_won >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- The timeline: one row per status reached, so setting a status twice is
-- one row (set_status is idempotent per (order, status)).
CREATE TABLE orders.order_history (
    order_id uuid NOT NULL REFERENCES orders.orders ON DELETE CASCADE,
    status   text NOT NULL,
    at       timestamptz NOT NULL,
    reason   text NOT NULL DEFAULT '',
    PRIMARY KEY (order_id, status)
);
