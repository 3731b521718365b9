-- The test participant's schema (tests/participant/sagatest.c), created by the
-- saga suites as the superuser: test data never goes into sql/ migrations.
DROP SCHEMA IF EXISTS sagatest CASCADE;
CREATE SCHEMA sagatest;
CREATE TABLE sagatest.inbox (msg_id text PRIMARY KEY, received_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE sagatest.outbox (
    id uuid PRIMARY KEY, subject text NOT NULL, msg_type text NOT NULL, correlation text NOT NULL,
    causation text NOT NULL, actor text NOT NULL, reply text NOT NULL, traceparent text NOT NULL,
    body bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
-- deliveries seen per (saga, step, kind): drives the scripts (fail the first N)
CREATE TABLE sagatest.tries (saga_id uuid, step int, kind text, n int NOT NULL,
    PRIMARY KEY (saga_id, step, kind));
-- the first outcome of each (saga, step) and direction; repeats answer it again
CREATE TABLE sagatest.outcomes (saga_id uuid, step int, kind text, outcome text NOT NULL,
    PRIMARY KEY (saga_id, step, kind));
-- every real effect, in order: what "no second effect" is checked against
CREATE TABLE sagatest.effects (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    saga_id uuid NOT NULL, step int NOT NULL, kind text NOT NULL);
-- the runtime suite's non-idempotent counter: one more per handled count command
CREATE TABLE sagatest.counts (key text PRIMARY KEY, n int NOT NULL);
