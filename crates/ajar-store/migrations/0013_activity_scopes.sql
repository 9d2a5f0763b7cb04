-- Every scope a record is about: each prefix of its resource id made of whole pairs of segments
-- (`/subscriptions/s`, `…/resourceGroups/rg`, `…/machines/vm`, the id itself when it is one; the
-- root `/` holds every record and is not listed). A page of the records
-- at one scope walks this index newest first, however rare they are in the whole log.
CREATE TABLE activity_scopes (
    scope TEXT NOT NULL,
    seq   BIGINT NOT NULL,
    PRIMARY KEY (scope, seq)
);
-- The records stored before: every prefix ending before a '/' or at the end, kept when it holds
-- an even number of '/' (whole pairs of segments).
WITH RECURSIVE positions (seq, rid, pos) AS (
    SELECT seq, resource_id, 2 FROM activity WHERE length(resource_id) > 1
    UNION ALL
    SELECT seq, rid, pos + 1 FROM positions WHERE pos <= length(rid)
),
prefixes (seq, scope) AS (
    SELECT seq, substr(rid, 1, pos - 1) FROM positions
    WHERE pos > length(rid) OR substr(rid, pos, 1) = '/'
)
INSERT INTO activity_scopes (scope, seq)
SELECT DISTINCT scope, seq FROM prefixes
WHERE (length(scope) - length(replace(scope, '/', ''))) % 2 = 0;
