-- A token made with another token (one's own token made with a session) names it, and is
-- deleted with it.
ALTER TABLE tokens ADD COLUMN parent_id TEXT;
CREATE INDEX tokens_by_parent ON tokens (parent_id) WHERE parent_id IS NOT NULL;

-- The networks an agent's machines may have addresses in (a JSON list of CIDR prefixes); NULL
-- for agents registered without them.
ALTER TABLE agents ADD COLUMN address_prefixes TEXT;

-- Who holds each port, so the live grants of one principal are counted through an index.
ALTER TABLE request_ports ADD COLUMN requestor TEXT;
UPDATE request_ports SET requestor =
    (SELECT requestor FROM requests WHERE requests.id = request_ports.request_id);
CREATE INDEX request_ports_live_by_requestor ON request_ports (requestor, end_time)
    WHERE status = 'Initiated';

-- Requests awaiting a decision, per requester (each may hold only so many).
CREATE INDEX jit_requests_pending_by_requester ON jit_requests (requester)
    WHERE state = 'Pending';
