-- Applications declare the actions they understand, in a namespace of their own (`crm` for
-- `crm.orders/read`), and role definitions over them; eligible roles and `authorize` use them.
-- A namespace belongs to one application.
CREATE TABLE application_actions (
    application_id TEXT PRIMARY KEY,
    namespace      TEXT NOT NULL UNIQUE,
    actions        TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE application_roles (
    application_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    actions        TEXT NOT NULL,
    -- The declared actions the patterns match, resolved when the role or the application's
    -- actions are written, so answering never matches patterns.
    allowed        TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (application_id, name)
);

-- Whether a role is in use, before it is deleted: by an eligibility (at an application, or of
-- ajar's roles anywhere), an assignment, or a request still under way at an application.
CREATE INDEX eligible_roles_by_role ON eligible_roles (role_name, application_id);
CREATE INDEX role_assignments_by_role ON role_assignments (role_name);
CREATE INDEX jit_requests_by_application_state ON jit_requests (application_id, state);
-- A principal's eligibilities, a page at a time.
CREATE INDEX eligible_roles_by_principal_page ON eligible_roles (principal, application_id, id);
