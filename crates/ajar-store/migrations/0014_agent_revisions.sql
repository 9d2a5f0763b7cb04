-- What each agent waits for. A commit that changes what enforcement points apply takes the next
-- revision and writes it on the guarded machines it changed and on their agents, so an agent
-- waits only for its own changes and, once up to date, reads only the machines changed since.
-- `full_revision` is the last time an agent's set of machines changed (it was registered, or a
-- machine it guarded was deleted): an agent behind it reads its whole state again.
ALTER TABLE agent_machines ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN full_revision BIGINT NOT NULL DEFAULT 0;
UPDATE agents SET revision = (SELECT value FROM revision WHERE id = 1),
    full_revision = (SELECT value FROM revision WHERE id = 1);
-- An agent's machines changed since a revision; the agents a replica must wake.
DROP INDEX agent_machines_by_agent;
CREATE INDEX agent_machines_by_agent ON agent_machines (agent_id, revision);
CREATE INDEX agents_by_revision ON agents (revision);
