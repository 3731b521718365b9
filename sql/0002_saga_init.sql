-- saga: the orchestrator's sagas, their transition logs and timers, with the
-- orchestrator's inbox and outbox. Applied as the saga role.

CREATE TABLE saga.inbox (
    msg_id      text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON saga.inbox (received_at);

CREATE TABLE saga.outbox (
    id          uuid PRIMARY KEY,
    subject     text NOT NULL,
    msg_type    text NOT NULL,
    correlation text NOT NULL,
    causation   text NOT NULL,
    actor       text NOT NULL,
    reply       text NOT NULL,
    traceparent text NOT NULL,
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION saga.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON saga.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION saga.outbox_notify();

-- One row per saga. `state` is layby.v1.SagaState (engine/saga_state.c), the
-- decider's whole input; `start` is the command that started it, which the
-- step builders read. The saga's one pending timer is `timer_due_at` (its kind,
-- step and attempt are inside `state`): the timer is part of the saga's row, so
-- it changes in the same statement as the state and under the same row lock.
CREATE TABLE saga.sagas (
    saga_id      uuid PRIMARY KEY,
    saga_type    text NOT NULL,
    version      integer NOT NULL CHECK (version > 0),
    status       text NOT NULL CHECK (status IN
                   ('RUNNING', 'COMPENSATING', 'COMPLETED', 'FAILED', 'STUCK', 'RESOLVED')),
    state        bytea NOT NULL,
    start_type   text NOT NULL,
    start        bytea NOT NULL,
    timer_due_at timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX sagas_timer_due ON saga.sagas (timer_due_at) WHERE timer_due_at IS NOT NULL;
CREATE INDEX sagas_finished ON saga.sagas (updated_at)
    WHERE status IN ('COMPLETED', 'FAILED', 'RESOLVED');
-- Unfinished sagas only: the status gauges count them without a full scan.
CREATE INDEX sagas_active ON saga.sagas (status)
    WHERE status IN ('RUNNING', 'COMPENSATING', 'STUCK');

-- Every input a saga was given and what was decided, in order (id).
-- `input` is layby.v1.SagaInput: replaying a saga re-decides these.
-- No foreign key to saga.sagas: the orchestrator holds the saga row's lock
-- while it writes its log, so the key check would only cost a lookup per row;
-- pruning deletes a saga and its log in one statement.
CREATE TABLE saga.saga_log (
    saga_id     uuid NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    at          timestamptz NOT NULL,
    msg_id      text NOT NULL,
    input_kind  text NOT NULL,
    input       bytea NOT NULL,
    verdict     text NOT NULL CHECK (verdict IN ('APPLIED', 'IGNORED', 'REFUSED')),
    from_status text NOT NULL,
    to_status   text NOT NULL,
    line        text NOT NULL,
    PRIMARY KEY (saga_id, id)
);

-- Queue-like churn: every row is deleted or rewritten within seconds, so vacuum
-- after a fixed number of dead rows rather than a fraction of the table.
ALTER TABLE saga.outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);
ALTER TABLE saga.sagas SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);
