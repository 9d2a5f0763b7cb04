-- Tokens that end (console sessions) and the groups an identity provider asserted when a
-- session was made from its token (a JSON list; NULL for ordinary tokens).
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN idp_groups TEXT;
