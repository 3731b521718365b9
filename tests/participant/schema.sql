-- The test participant's schema (tests/participant/sagatest.c), created by the
-- saga suites as the superuser: test data never goes into sql/ migrations.
DROP SCHEMA IF EXISTS sagatest CASCADE;
CREATE SCHEMA sagatest;
-- its inbox and outbox are every service's: sql/shared, applied after this
-- file by tsupport_sagatest_setup() (tests/support/tsupport_layby.c)
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
