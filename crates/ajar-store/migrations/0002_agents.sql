-- Enforcement agents, the machines they guard, and what they applied.

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    mode             TEXT NOT NULL,
    public_address   TEXT,
    port_low         BIGINT,
    port_high        BIGINT,
    token_id         TEXT NOT NULL,
    last_seen        BIGINT,
    version          TEXT,
    applied_revision BIGINT,
    created_at       BIGINT NOT NULL
);

-- A machine is guarded by at most one agent.
CREATE TABLE agent_machines (
    machine_id TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE
);
CREATE INDEX agent_machines_by_agent ON agent_machines (agent_id);

ALTER TABLE request_ports ADD COLUMN gateway_agent TEXT;
ALTER TABLE request_ports ADD COLUMN mapped_port BIGINT;
ALTER TABLE request_ports ADD COLUMN applied_at BIGINT;
ALTER TABLE request_ports ADD COLUMN removed_at BIGINT;

-- A mapped port serves one open grant at a time on its gateway.
CREATE UNIQUE INDEX request_ports_mapped ON request_ports (gateway_agent, mapped_port)
    WHERE status = 'Initiated' AND mapped_port IS NOT NULL;

-- Bumped by every change to what enforcement points must apply; agents long-poll on it.
CREATE TABLE revision (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);
