-- Every scope a record is about, itself included: `/subscriptions/s`, `…/resourceGroups/rg`,
-- `…/machines/vm`, … (the root `/` holds every record and is not listed). A page of the records
-- at one scope walks this index newest first, however rare they are in the whole log.
CREATE TABLE activity_scopes (
    scope TEXT NOT NULL,
    seq   BIGINT NOT NULL,
    PRIMARY KEY (scope, seq)
);
-- The records stored before: each prefix of the resource id that ends before a '/', and the id.
WITH RECURSIVE positions (seq, rid, pos) AS (
    SELECT seq, resource_id, 2 FROM activity WHERE length(resource_id) > 1
    UNION ALL
    SELECT seq, rid, pos + 1 FROM positions WHERE pos < length(rid)
)
INSERT INTO activity_scopes (scope, seq)
SELECT substr(rid, 1, pos - 1), seq FROM positions WHERE substr(rid, pos, 1) = '/'
UNION
SELECT resource_id, seq FROM activity WHERE resource_id <> '/';
