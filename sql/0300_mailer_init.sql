-- mailer: only its inbox (a mail is sent at most once per delivery of its
-- command, docs/DECISIONS.md) and an outbox the runtime expects.

CREATE TABLE mailer.inbox (
    msg_id      text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON mailer.inbox (received_at);

CREATE TABLE mailer.outbox (
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
