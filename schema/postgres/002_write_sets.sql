-- idnode PostgreSQL schema 2: what SQLite schemas v7 and v8 added, and the column SQLite has as
-- a rowid. Audit write sets hash every audited row as the JSON array of all its columns, so a
-- row must have the same columns and values on both engines (byte-identical hashes):
-- * records.id, SQLite's rowid: max(id) + 1 at insert, kept by an update, as SQLite assigns it;
--   rows written by schema 1 are numbered in key order; chain_head.record_id is the max.
-- * prefixes.redirect (SQLite v7): 1 redirect, 0 show the page, NULL inherit; smallint, a number.
-- * audit_log.rows_digest and write_set (SQLite v8); NULL in entries written before. The first
--   writable open re-bases such a log (audit.rebase entries holding every row as it is then).
-- * meta: escrow.restored_through (the head a restore loaded; tokens it wrote may be absent).
-- rows: v8

ALTER TABLE records ADD COLUMN id bigint;
UPDATE records r SET id = n.id FROM (SELECT handle_key, row_number() OVER (ORDER BY handle_key) AS id FROM records) n
  WHERE r.handle_key = n.handle_key;
ALTER TABLE records ALTER COLUMN id SET NOT NULL;
-- The highest id is kept in the chain head (max(id) costs an index descent per partition);
-- the index serves the rare read after the highest row is deleted.
CREATE INDEX records_by_id ON records (id);
ALTER TABLE chain_head ADD COLUMN record_id bigint NOT NULL DEFAULT 0;
UPDATE chain_head SET record_id = (SELECT coalesce(max(id), 0) FROM records);

ALTER TABLE prefixes ADD COLUMN redirect smallint CHECK (redirect IN (0, 1));

ALTER TABLE audit_log ADD COLUMN rows_digest text;
ALTER TABLE audit_log ADD COLUMN write_set text;

CREATE TABLE meta (
  key    text COLLATE "C" PRIMARY KEY,
  value  text NOT NULL
);
