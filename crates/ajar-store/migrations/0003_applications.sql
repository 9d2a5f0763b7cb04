-- Managed applications (role access) and who is eligible for which role on them.

CREATE TABLE applications (
    id             TEXT PRIMARY KEY,
    subscription   TEXT NOT NULL,
    resource_group TEXT NOT NULL,
    name           TEXT NOT NULL,
    properties     TEXT NOT NULL,
    jit_enabled    BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX applications_by_scope ON applications (subscription, resource_group, name);

CREATE TABLE eligible_roles (
    application_id TEXT NOT NULL,
    id             TEXT NOT NULL,
    principal      TEXT NOT NULL,
    role_name      TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (application_id, id)
);
CREATE INDEX eligible_roles_by_principal ON eligible_roles (principal);
