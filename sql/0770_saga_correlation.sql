-- saga: the business flow a saga belongs to, when it is not the saga's own id
-- (DESIGN §2: Layby-Correlation is the order id for order flows). A pay saga
-- (sagas/order_pay.c) has an id of its own per pay request; its correlation
-- is the order id, so `layby-ctl order show`, `saga list --correlation` and
-- `events replay --check` find every saga of an order. NULL = the saga's id
-- (a place saga's id is the order id): only the sagas of another's flow are
-- in the index. Written once, when the saga is inserted, never updated, so a
-- running saga's writes stay HOT updates (sql/0760). Pay sagas stored before
-- this migration keep NULL: they are found by their own id only.
ALTER TABLE saga.sagas ADD COLUMN correlation uuid;
CREATE INDEX sagas_correlation ON saga.sagas (correlation) WHERE correlation IS NOT NULL;
