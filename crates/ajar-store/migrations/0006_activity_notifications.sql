-- The activity log (hash-chained, append-only), notification subscriptions per scope, and the
-- outbox of notifications written in the same transaction as the change they tell about.

CREATE TABLE activity (
    seq            BIGINT PRIMARY KEY,
    at             BIGINT NOT NULL,
    principal      TEXT NOT NULL,
    source_address TEXT,
    action         TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    request_id     TEXT,
    correlation_id TEXT,
    result         TEXT NOT NULL,
    details        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX activity_by_resource ON activity (resource_id, seq);
CREATE INDEX activity_by_principal ON activity (principal, seq);
CREATE INDEX activity_by_at ON activity (at, seq);
CREATE INDEX activity_by_request ON activity (request_id) WHERE request_id IS NOT NULL;

CREATE TABLE notification_subscriptions (
    id           TEXT PRIMARY KEY,
    subscription TEXT NOT NULL,
    name         TEXT NOT NULL,
    properties   TEXT NOT NULL,
    secret       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt    BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt) WHERE state = 'Pending';
CREATE INDEX outbox_by_subscription ON outbox (subscription_id, created_at);

-- When the "expires in 15 minutes" notice of an automatic network request was queued.
ALTER TABLE requests ADD COLUMN expiry_warned_at BIGINT;
