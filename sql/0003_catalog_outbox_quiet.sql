-- catalog: the outbox no longer NOTIFYs. Every writer hands its rows to its own
-- relay (engine/outbox_relay.c), so the notification told no one anything new,
-- while PostgreSQL serialized every notifying commit on one lock and signalled
-- every listening backend (docs/BENCHMARKS.md, "saga latency").
DROP TRIGGER outbox_notify ON catalog.outbox;
DROP FUNCTION catalog.outbox_notify();
