-- The location a policy was written at through the Azure-compatible paths (NULL: none given),
-- and a role request's location and tags, kept and answered as they were sent.
ALTER TABLE policies ADD COLUMN location TEXT;
ALTER TABLE jit_requests ADD COLUMN location TEXT;
ALTER TABLE jit_requests ADD COLUMN tags TEXT;
