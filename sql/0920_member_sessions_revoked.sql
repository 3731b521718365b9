-- member: ended logins are pruned a day after they expire or are revoked
-- (member_tick, services/member/member_sql.c); this index finds the revoked
-- ones as sessions_expires finds the expired ones.
CREATE INDEX sessions_revoked ON member.sessions (revoked_at) WHERE revoked_at IS NOT NULL;
