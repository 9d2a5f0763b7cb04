-- An agent's inventory scope: the resource group where an `aws` agent registers the instances it
-- discovers as machines it guards (NULL: it registers none).
ALTER TABLE agents ADD COLUMN inventory_scope TEXT;

-- What the enforcement point guarding a machine last reported about it: why it cannot enforce
-- access there (NULL: it can) and the protected ports something else leaves open to everyone
-- (a sorted JSON list) with their count. A machine with nothing reported has no row.
CREATE TABLE machine_enforcement (
    machine_id         TEXT PRIMARY KEY,
    unsupported_reason TEXT,
    exposures          TEXT NOT NULL,
    exposure_count     BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- The sum of `machine_enforcement.exposure_count`, kept as rows are written, so the metric reads
-- one row however many machines there are.
CREATE TABLE enforcement_totals (
    id                 BIGINT PRIMARY KEY CHECK (id = 1),
    standing_exposures BIGINT NOT NULL
);
INSERT INTO enforcement_totals (id, standing_exposures) VALUES (1, 0);
