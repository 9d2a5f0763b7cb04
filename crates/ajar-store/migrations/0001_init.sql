-- ajar schema, version 1. Instants are microseconds since the Unix epoch (UTC); JSON is TEXT.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE machines (
    id                TEXT PRIMARY KEY,
    subscription      TEXT NOT NULL,
    resource_group    TEXT NOT NULL,
    name              TEXT NOT NULL,
    properties        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX machines_by_scope ON machines (subscription, resource_group, name);

CREATE TABLE policies (
    id             TEXT PRIMARY KEY,
    subscription   TEXT NOT NULL,
    resource_group TEXT NOT NULL,
    name           TEXT NOT NULL,
    rules          TEXT NOT NULL,
    etag           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX policies_by_scope ON policies (subscription, resource_group, name);

-- A machine is covered by at most one policy.
CREATE TABLE policy_machines (
    machine_id TEXT PRIMARY KEY,
    policy_id  TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE
);
CREATE INDEX policy_machines_by_policy ON policy_machines (policy_id);

CREATE TABLE requests (
    id             TEXT PRIMARY KEY,
    policy_id      TEXT NOT NULL,
    requestor      TEXT NOT NULL,
    justification  TEXT,
    source_address TEXT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX requests_by_policy ON requests (policy_id, created_at, id);

CREATE TABLE request_ports (
    request_id    TEXT NOT NULL REFERENCES requests (id),
    seq           BIGINT NOT NULL,
    machine_id    TEXT NOT NULL,
    number        BIGINT NOT NULL,
    protocol      TEXT NOT NULL,
    sources       TEXT NOT NULL,
    supersede_key TEXT NOT NULL,
    end_time      BIGINT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    closed_at     BIGINT,
    PRIMARY KEY (request_id, seq)
);
-- Only open ports are looked up by end time and supersede key: partial indexes stay small and
-- lose their entries when ports close.
CREATE INDEX request_ports_due ON request_ports (end_time) WHERE status = 'Initiated';
CREATE INDEX request_ports_by_key ON request_ports (supersede_key) WHERE status = 'Initiated';
CREATE INDEX request_ports_by_machine ON request_ports (machine_id, status);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    principal   TEXT NOT NULL,
    description TEXT,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Custom roles only; the built-in roles live in code.
CREATE TABLE role_definitions (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    actions     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE role_assignments (
    id         TEXT PRIMARY KEY,
    principal  TEXT NOT NULL,
    role_name  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX role_assignments_by_principal ON role_assignments (principal);

CREATE TABLE jit_settings (
    scope       TEXT PRIMARY KEY,
    jit_enabled BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
