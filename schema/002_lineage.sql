-- idnode schema v2: lineage events and edges; payloads of non-record writes.

-- Lineage events as posted (EPCIS-style), append-only. body_json is the normalised event.
CREATE TABLE events (
  id           INTEGER PRIMARY KEY,      -- eventId
  type         TEXT NOT NULL CHECK (type IN ('aggregation', 'transformation')),
  action       TEXT,                     -- ADD | DELETE | OBSERVE for aggregations
  event_time   TEXT NOT NULL,            -- ISO-8601 UTC, milliseconds
  record_time  TEXT NOT NULL,
  actor        TEXT NOT NULL,
  body_json    TEXT NOT NULL,
  audit_seq    INTEGER NOT NULL
);

-- Edges point from the whole to its part: aggregation parent -> child, transformation
-- output -> input. Valid from `since` (event time of the ADD/OBSERVE/transformation) until
-- `until` (event time of the DELETE that closed it; NULL while open).
CREATE TABLE edges (
  id           INTEGER PRIMARY KEY,
  from_key     TEXT NOT NULL,
  to_key       TEXT NOT NULL,
  type         TEXT NOT NULL,
  since        TEXT NOT NULL,
  until        TEXT,
  event_id     INTEGER NOT NULL,
  until_event  INTEGER
);
CREATE INDEX edges_down ON edges (from_key, to_key);
CREATE INDEX edges_up ON edges (to_key, from_key);

-- The spelling an identifier was first named with in an event (lineage answers use it
-- when the identifier has no local record).
CREATE TABLE lineage_names (
  key     TEXT PRIMARY KEY,
  handle  TEXT NOT NULL
) WITHOUT ROWID;

-- What a non-record write stored (prefix, token, event): its SHA-256 is the audit digest,
-- so verification can check the payload as well as the chain.
CREATE TABLE audit_payloads (
  seq      INTEGER PRIMARY KEY,
  payload  TEXT NOT NULL
);

-- Verification finds the record versions an audit entry wrote.
CREATE INDEX record_versions_by_seq ON record_versions (audit_seq);
