-- saga: the console's Overview counts the sagas that finished in the last
-- minutes by type and state (engine/orchestrator/saga_overview.c) from the
-- index alone. sagas_finished keeps its key (finished_at: pruning's range)
-- and carries saga_type and status: saga_type never changes, and the one
-- write that sets finished_at changes status too (never HOT: sagas_active
-- indexes status), so running sagas' steps stay HOT updates as before.
DROP INDEX saga.sagas_finished;
CREATE INDEX sagas_finished ON saga.sagas (finished_at) INCLUDE (saga_type, status)
    WHERE finished_at IS NOT NULL;
