-- Every list reads one page in its own order through an index: the key it pages on last, after
-- the columns it is filtered by.
CREATE INDEX policies_page_by_subscription ON policies (subscription, id);
CREATE INDEX policies_page_by_group ON policies (subscription, resource_group, id);
CREATE INDEX applications_page_by_subscription ON applications (subscription, id);
CREATE INDEX applications_page_by_group ON applications (subscription, resource_group, id);
DROP INDEX jit_requests_by_application;
CREATE INDEX jit_requests_by_application ON jit_requests (application_id, created_at, id);
DROP INDEX jit_requests_by_state;
CREATE INDEX jit_requests_by_state ON jit_requests (state, created_at, id);
CREATE INDEX tokens_page ON tokens (created_at, id);
CREATE INDEX tokens_page_by_principal ON tokens (principal, created_at, id);
CREATE INDEX role_assignments_page ON role_assignments (created_at, id);
DROP INDEX role_assignments_by_principal;
CREATE INDEX role_assignments_by_principal ON role_assignments (principal, created_at, id);
CREATE INDEX notification_subscriptions_page ON notification_subscriptions (subscription, name);
DROP INDEX outbox_by_subscription;
CREATE INDEX outbox_by_subscription ON outbox (subscription_id, created_at, id);
CREATE INDEX outbox_by_subscription_state ON outbox (subscription_id, state, created_at, id);
-- An application's role request figures, kept up to date as role requests are stored and
-- change state instead of computed from every request on read: its latest role request, and
-- per hour of creation how many of its role requests are approved (or were: active, expired,
-- revoked).
CREATE TABLE application_figures (
    application_id TEXT PRIMARY KEY,
    last_at        BIGINT NOT NULL,
    last_request   TEXT NOT NULL,
    last_user      TEXT NOT NULL
);
CREATE TABLE application_request_hours (
    application_id TEXT NOT NULL,
    hour           BIGINT NOT NULL,
    approved       BIGINT NOT NULL,
    PRIMARY KEY (application_id, hour)
);
-- What was stored before.
INSERT INTO application_figures (application_id, last_at, last_request, last_user)
SELECT application_id, created_at, id, requester FROM (
    SELECT application_id, created_at, id, requester, ROW_NUMBER() OVER
        (PARTITION BY application_id ORDER BY created_at DESC, id DESC) AS rn
    FROM jit_requests WHERE kind = 'role') t
WHERE rn = 1;
INSERT INTO application_request_hours (application_id, hour, approved)
SELECT application_id, created_at / 3600000000, COUNT(*) FROM jit_requests
WHERE kind = 'role' AND state IN ('Approved', 'Active', 'Expired', 'Revoked')
GROUP BY application_id, created_at / 3600000000;
