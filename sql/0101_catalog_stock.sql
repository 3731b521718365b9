-- catalog: stock accounting, reservations for the order sagas, listing
-- indexes and the wishlist (issue 19).
--
-- Per product (the audit's conservation law, DESIGN §7):
--   initial_stock + restocked = stock_available + reserved + sold - returned
-- Every statement that moves units changes both sides within one UPDATE.
ALTER TABLE catalog.products
    ADD COLUMN initial_stock bigint NOT NULL DEFAULT 0 CHECK (initial_stock >= 0),
    ADD COLUMN restocked     bigint NOT NULL DEFAULT 0,
    ADD COLUMN reserved      bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    ADD COLUMN sold          bigint NOT NULL DEFAULT 0 CHECK (sold >= 0),
    ADD COLUMN returned      bigint NOT NULL DEFAULT 0 CHECK (returned >= 0),
    -- grows by one per change; the edge's read model keeps the highest it saw
    ADD COLUMN version       bigint NOT NULL DEFAULT 1;
UPDATE catalog.products SET initial_stock = stock_available;

-- Listing: keyset order (created_at, product_id), per category too, and the
-- case-insensitive name search (PLATFORM.md: ILIKE uses a trigram index on
-- name itself, not on lower(name)).
CREATE INDEX products_created ON catalog.products (created_at, product_id);
DROP INDEX catalog.products_category;
CREATE INDEX products_category ON catalog.products (category, created_at, product_id);
CREATE INDEX products_name_trgm ON catalog.products USING gin (name catalog.gin_trgm_ops);

-- One row per order that ever asked for stock.
CREATE TABLE catalog.stock_orders (
    order_id   uuid PRIMARY KEY,
    status     text NOT NULL CHECK (status IN ('RESERVED', 'REJECTED', 'RELEASED', 'SOLD', 'RETURNED')),
    updated_at timestamptz NOT NULL
);

-- The reserved lines, with the name and price the order snapshots.
CREATE TABLE catalog.stock_lines (
    order_id       uuid NOT NULL REFERENCES catalog.stock_orders,
    product_id     uuid NOT NULL REFERENCES catalog.products,
    position       int NOT NULL,
    quantity       bigint NOT NULL CHECK (quantity > 0),
    name           text NOT NULL,
    unit_price_won bigint NOT NULL CHECK (unit_price_won > 0),
    PRIMARY KEY (order_id, product_id)
);

-- The first outcome of each operation on an order: a repeat answers it again.
CREATE TABLE catalog.stock_ops (
    order_id  uuid NOT NULL,
    op        text NOT NULL CHECK (op IN ('reserve', 'release', 'confirm', 'return')),
    code      text NOT NULL,            -- 'ok' or an engine/lb.h code
    reason    text NOT NULL DEFAULT '',
    short_ids text[] NOT NULL DEFAULT '{}',
    at        timestamptz NOT NULL,
    PRIMARY KEY (order_id, op)
);

CREATE TABLE catalog.wishlist_items (
    member_id  uuid NOT NULL,
    product_id uuid NOT NULL REFERENCES catalog.products,
    quantity   int NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (member_id, product_id)
);

-- Orders placed from a wishlist, so a repeated command removes nothing twice.
CREATE TABLE catalog.wishlist_orders (
    order_id  uuid PRIMARY KEY,
    member_id uuid NOT NULL,
    at        timestamptz NOT NULL
);
