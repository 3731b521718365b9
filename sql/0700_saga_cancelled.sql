-- saga: a saga a signal rolled back ends CANCELLED (engine/saga.h), a status
-- of its own beside FAILED (rolled back after a failure): finished, so it is
-- pruned after the retention like the other finished statuses.
ALTER TABLE saga.sagas DROP CONSTRAINT sagas_status_check;
ALTER TABLE saga.sagas ADD CONSTRAINT sagas_status_check CHECK (status IN
    ('RUNNING', 'COMPENSATING', 'COMPLETED', 'FAILED', 'STUCK', 'RESOLVED', 'CANCELLED'));
DROP INDEX saga.sagas_finished;
CREATE INDEX sagas_finished ON saga.sagas (updated_at)
    WHERE status IN ('COMPLETED', 'FAILED', 'RESOLVED', 'CANCELLED');
