-- History read for someone who may read only some scopes walks just those, newest first: a
-- network request keeps its policy's subscription and resource group beside the policy's id.
-- They stay NULL where the policy was deleted before they were kept; such requests are read
-- apart (`subscription IS NULL`).
ALTER TABLE requests ADD COLUMN subscription TEXT;
ALTER TABLE requests ADD COLUMN resource_group TEXT;
UPDATE requests SET
    subscription = (SELECT p.subscription FROM policies p WHERE p.id = requests.policy_id),
    resource_group = (SELECT p.resource_group FROM policies p WHERE p.id = requests.policy_id);
CREATE INDEX requests_by_subscription ON requests (subscription, created_at, id);
CREATE INDEX requests_by_group ON requests (subscription, resource_group, created_at, id);
CREATE INDEX jit_requests_by_subscription ON jit_requests (subscription, created_at, id);
CREATE INDEX jit_requests_by_group ON jit_requests (subscription, resource_group, created_at, id);
