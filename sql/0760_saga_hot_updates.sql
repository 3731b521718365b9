-- saga: most writes of a running saga become HOT updates (issue 20's checkout
-- cost, docs/BENCHMARKS.md "Where a checkout's cost goes").
--
-- Every step of a saga rewrites its row with a new timer (timer_due_at) and a
-- new updated_at. Both were indexed (sagas_timer_due, sagas_finished), so no
-- update could be HOT: each wrote a new entry in every index and left a dead
-- version for the next lock and ON CONFLICT probe to walk. Now no column a
-- running saga's step changes is indexed:
--  * the timer sweep finds due timers through timer_slot, the timer's second
--    (generated): consecutive timers of one saga (a step's timeout, then the
--    next one's, tens of ms apart) mostly fall in the same second, so the
--    slot does not change; the sweep filters on timer_due_at itself;
--  * pruning finds finished sagas through finished_at (generated: updated_at
--    once the status is a finished one, NULL before), which changes once, when
--    the saga ends (that write changes status, so it was never HOT anyway);
--  * `layby-ctl saga list` pages by (created_at, saga_id), which never change.
-- status stays indexed (sagas_active): it changes only when a saga starts
-- compensating or ends. fillfactor leaves room in each page for the new
-- versions HOT keeps beside the old.

-- floor(epoch seconds): time-zone independent, so immutable (extract(epoch)
-- of a timestamptz is only marked stable because other fields depend on the
-- zone). The sweep calls it on its own time with the same rounding.
CREATE FUNCTION saga.timer_slot(due timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN floor(extract(epoch FROM due))::bigint;

ALTER TABLE saga.sagas SET (fillfactor = 70);
-- One rewrite of the table for both columns (and the new fillfactor).
ALTER TABLE saga.sagas
    ADD COLUMN timer_slot bigint GENERATED ALWAYS AS (saga.timer_slot(timer_due_at)) STORED,
    ADD COLUMN finished_at timestamptz GENERATED ALWAYS AS (
        CASE WHEN status IN ('COMPLETED', 'FAILED', 'RESOLVED', 'CANCELLED') THEN updated_at END
    ) STORED;

DROP INDEX saga.sagas_timer_due;
DROP INDEX saga.sagas_finished;
CREATE INDEX sagas_timer_slot ON saga.sagas (timer_slot) WHERE timer_slot IS NOT NULL;
CREATE INDEX sagas_finished ON saga.sagas (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX sagas_created ON saga.sagas (created_at, saga_id);
