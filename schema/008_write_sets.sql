-- idnode schema v8: audit write sets. Each entry records the rows it left in every audited
-- table (tokens, prefixes, templates, events, edges, lineage_names, sync_reports, records,
-- record_versions, audit_payloads): one line per row, "table TAB key-JSON TAB sha256 of the
-- row's canonical JSON array" ("-" when the write removed it), sorted. rows_digest is its
-- SHA-256 and part of the entry's hash, so verification can replay the write sets into the
-- expected content of each table and compare. NULL in entries written before v8; the first
-- writable open re-bases such a log (audit.rebase entries holding every row as it is then).
ALTER TABLE audit_log ADD COLUMN rows_digest TEXT;
ALTER TABLE audit_log ADD COLUMN write_set TEXT;
