-- idnode schema v6: the change feed. Every write transaction records what it changed (one row
-- per kind and key), so every process that caches answers (a node, each worker of
-- `serve --workers`) can drop exactly those after another process commits.
-- Ids are max(id) + 1 (no AUTOINCREMENT: it costs a sqlite_sequence update per row). Pruning
-- always keeps the newest row, so ids are never reused and a follower's cursor stays
-- meaningful; with one writer at a time the ids of rows still kept are contiguous (a gap
-- before the oldest row means the follower fell behind the pruned window).
CREATE TABLE changes (
  id         INTEGER PRIMARY KEY,                -- the feed's cursor
  audit_seq  INTEGER,                            -- the write's audit entry; NULL with history off
  kind       TEXT NOT NULL CHECK (kind IN ('record', 'prefix', 'template', 'token')),
  key        TEXT NOT NULL                       -- handle key, prefix key, "prefix@version", token id
);
