-- saga: the console Overview counts the unfinished sagas by type and state
-- from sagas_active alone (engine/orchestrator/saga_overview.c).
--
-- sagas_active (sql/0002) holds status only, so counting by type read each
-- unfinished saga's row: with 150,000 sagas in flight (in a shop, every order
-- until its return window closes) PostgreSQL chose a parallel sequential
-- scan of the whole table, 348 ms on three processes, at every refresh of
-- the page (5 s). With saga_type carried in the index the count is an
-- index-only scan: 35 ms (docs/BENCHMARKS.md, twenty-fifth sitting).
-- saga_type never changes, so running sagas' steps stay HOT updates.
DROP INDEX saga.sagas_active;
CREATE INDEX sagas_active ON saga.sagas (status) INCLUDE (saga_type)
    WHERE status IN ('RUNNING', 'COMPENSATING', 'STUCK');
