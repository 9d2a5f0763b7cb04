-- Pages of history newest first, of everyone's or one requester's, walk these in order.
CREATE INDEX requests_by_time ON requests (created_at, id);
CREATE INDEX requests_by_requestor ON requests (requestor, created_at, id);
CREATE INDEX jit_requests_by_time ON jit_requests (created_at, id);
-- Whether a network request belongs to an approval request, looked up once per request listed.
CREATE INDEX jit_requests_by_name ON jit_requests (kind, name);
