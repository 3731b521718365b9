-- saga: timer_slot and finished_at (sql/0760) become plain columns that the
-- orchestrator writes with the rest of the row (saga_write, saga_park in
-- engine/orchestrator/saga_orch_sql.c). As generated columns, PostgreSQL 15
-- read their expressions back from the catalog and planned them at the start
-- of every statement that wrote saga.sagas, and ran saga.timer_slot() as an
-- SQL function for every row: 12 % of the CPU of the orchestrator's sessions
-- at a quarter of the checkout peak (docs/BENCHMARKS.md, twentieth sitting).
-- DROP EXPRESSION keeps the values already stored; the writers compute the
-- same ones: timer_slot = saga.timer_slot(timer_due_at), finished_at =
-- updated_at once the status is a finished one, else NULL.
ALTER TABLE saga.sagas
    ALTER COLUMN timer_slot DROP EXPRESSION,
    ALTER COLUMN finished_at DROP EXPRESSION;
