-- saga: the check of a batch the orchestrator decided from the rows it
-- remembers instead of reading them (engine/orchestrator/saga_orch_mem.c,
-- svc.h svc_speculate_fn). Sent before the batch's writes, in the same round
-- trip: locks the rows in id order, as the ordinary lock does (saga_lock), and
-- fails the transaction unless every row's state and status are still the
-- ones remembered. Under READ COMMITTED a row another transaction moved while
-- this one waited for its lock is compared in its new version (the lock
-- re-reads it), so a concurrent step is seen, never overwritten.
CREATE FUNCTION saga.lock_unchanged(ids uuid[], states bytea[], statuses text[]) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    held int;
BEGIN
    SELECT count(*) INTO held FROM (
        SELECT 1 FROM saga.sagas s
        JOIN unnest(ids, states, statuses) AS r(id, state, status)
            ON s.saga_id = r.id AND s.state = r.state AND s.status = r.status
        ORDER BY s.saga_id FOR UPDATE OF s) locked;
    IF held <> cardinality(ids) THEN
        RAISE EXCEPTION 'saga rows changed since this orchestrator wrote them'
            USING ERRCODE = 'serialization_failure';
    END IF;
END $$;
