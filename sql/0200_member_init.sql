-- member: members with sealed personal data, their logins (sessions) and
-- refresh tokens, with the service's inbox and outbox.
-- Personal data is never stored in the clear: username, email and phone are
-- XChaCha20-Poly1305 values (engine/seal.h) and look-ups go through keyed
-- BLAKE2b blind indexes of the case-folded text. Each sealed value names its
-- key in its first byte (rekey finds old rows by it).

-- inbox and outbox: sql/shared/inbox_outbox.sql (applied to every schema).

CREATE TABLE member.members (
    member_id       uuid PRIMARY KEY,
    username_index  bytea NOT NULL UNIQUE,      -- blind index of the folded username
    email_index     bytea NOT NULL,             -- blind index of the folded email
    username_sealed bytea NOT NULL,
    email_sealed    bytea NOT NULL,
    phone_sealed    bytea NOT NULL,
    password_hash   text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role            text NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'ADMIN')),
    status          text NOT NULL CHECK (status IN ('PENDING_VERIFICATION', 'ACTIVE')),
    locked          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- One login: the family of refresh tokens born from one password check.
CREATE TABLE member.sessions (
    session_id  uuid PRIMARY KEY,
    member_id   uuid NOT NULL REFERENCES member.members ON DELETE CASCADE,
    access_jti  text NOT NULL,                  -- the newest access token's id
    access_exp  bigint NOT NULL,                -- its exp (s), how long a revocation must last
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_member ON member.sessions (member_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expires ON member.sessions (expires_at);

-- Refresh tokens, stored as BLAKE2b hashes only; spent_at marks a rotated one,
-- whose reuse revokes its session.
CREATE TABLE member.refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES member.sessions ON DELETE CASCADE,
    spent_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON member.refresh_tokens (session_id);
