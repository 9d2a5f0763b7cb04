-- Local group membership (principals in `group:NAME`), and approval-gated network requests and
-- extensions on the shared request engine.

CREATE TABLE group_members (
    group_name TEXT NOT NULL,
    member     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_name, member)
);
CREATE INDEX group_members_by_member ON group_members (member);

-- `role`: a role activation on an application (`application_id`); `network`: an initiate under
-- a network policy (`application_id` holds the policy id, `detail` the initiate as asked).
ALTER TABLE jit_requests ADD COLUMN kind TEXT NOT NULL DEFAULT 'role';
ALTER TABLE jit_requests ADD COLUMN detail TEXT;
-- The request this one extends, if any.
ALTER TABLE jit_requests ADD COLUMN extends TEXT;
CREATE INDEX jit_requests_by_requester ON jit_requests (requester, created_at);
