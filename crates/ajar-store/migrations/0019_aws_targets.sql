-- The cloud targets machines name through their labels `aws:instance-id` (kind `instance`) and
-- `aws:group-id` (kind `group`): the EC2 instance and the security group an `aws` agent enforces
-- a machine's grants on. Each is named by at most one machine, so two machines' grants never
-- share an instance or a group. Kept in the transaction of every machine write and delete.
--
-- Not backfilled: labels live in `machines.properties` as JSON text, which SQLite and PostgreSQL
-- read with different functions (`json_extract` against `->>`), and the migrations are SQL both
-- engines run as written. No released version of ajar stored these labels, so the table starts
-- empty; a machine written before is entered the next time it is written.
CREATE TABLE aws_targets (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    machine_id TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
-- A machine's targets, replaced when it is written and removed when it is deleted.
CREATE INDEX aws_targets_by_machine ON aws_targets (machine_id);
