-- Bumped by every commit that changes who may do what (tokens, roles, assignments, groups,
-- applications, eligibility, role requests), so every replica knows when what it derived from
-- them (resolved tokens, the authorize index) went stale.
CREATE TABLE access_revision (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO access_revision (id, value) VALUES (1, 0);
