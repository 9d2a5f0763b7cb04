-- Role activation requests on managed applications; their lifecycle is kept as JSON, with the
-- state and the next instant the scheduler must look at alongside for queries.

CREATE TABLE jit_requests (
    id             TEXT PRIMARY KEY,
    subscription   TEXT NOT NULL,
    resource_group TEXT NOT NULL,
    name           TEXT NOT NULL,
    application_id TEXT NOT NULL,
    requester      TEXT NOT NULL,
    roles          TEXT NOT NULL,
    justification  TEXT,
    lifecycle      TEXT NOT NULL,
    state          TEXT NOT NULL,
    due            BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX jit_requests_due ON jit_requests (due) WHERE due IS NOT NULL;
CREATE INDEX jit_requests_by_application ON jit_requests (application_id, created_at);
CREATE INDEX jit_requests_by_state ON jit_requests (state);
