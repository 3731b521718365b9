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
CREATE INDEX sagas_status ON saga.sagas (status);

-- Every input a saga was given and what was decided, in order (id).
-- `input` is layby.v1.SagaInput: replaying a saga re-decides these.
CREATE TABLE saga.saga_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga_id     uuid NOT NULL REFERENCES saga.sagas (saga_id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    msg_id      text NOT NULL,
    input_kind  text NOT NULL,
    input       bytea NOT NULL,
    verdict     text NOT NULL CHECK (verdict IN ('APPLIED', 'IGNORED', 'REFUSED')),
    from_status text NOT NULL,
    to_status   text NOT NULL,
    line        text NOT NULL
);
CREATE INDEX saga_log_saga ON saga.saga_log (saga_id, id);
