-- catalog: the admin's stock adjustments that carried an id (the edge derives
-- it from PATCH /api/v1/products/{id}/stock's Idempotency-Key). A retried
-- restock whose first answer was lost finds its row and is not applied twice.
CREATE TABLE catalog.stock_adjustments (
    product_id    uuid NOT NULL REFERENCES catalog.products,
    adjustment_id uuid NOT NULL,
    delta         bigint NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (product_id, adjustment_id)
);
