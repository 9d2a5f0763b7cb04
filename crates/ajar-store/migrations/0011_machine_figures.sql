-- A machine's request figures, kept up to date as requests are stored instead of computed from
-- every request on read: its latest request, and how many requests it had per hour (the
-- "approved in the last 7 days" figure adds up the hours of the window).
CREATE TABLE machine_figures (
    machine_id   TEXT PRIMARY KEY,
    last_at      BIGINT NOT NULL,
    last_request TEXT NOT NULL,
    last_user    TEXT NOT NULL
);
CREATE TABLE machine_request_hours (
    machine_id TEXT NOT NULL,
    hour       BIGINT NOT NULL,
    requests   BIGINT NOT NULL,
    PRIMARY KEY (machine_id, hour)
);
-- What was stored before.
INSERT INTO machine_figures (machine_id, last_at, last_request, last_user)
SELECT machine_id, created_at, id, requestor FROM (
    SELECT p.machine_id, r.created_at, r.id, r.requestor, ROW_NUMBER() OVER
        (PARTITION BY p.machine_id ORDER BY r.created_at DESC, r.id DESC) AS rn
    FROM request_ports p JOIN requests r ON r.id = p.request_id) t
WHERE rn = 1;
INSERT INTO machine_request_hours (machine_id, hour, requests)
SELECT p.machine_id, r.created_at / 3600000000, COUNT(DISTINCT r.id)
FROM request_ports p JOIN requests r ON r.id = p.request_id
GROUP BY p.machine_id, r.created_at / 3600000000;
