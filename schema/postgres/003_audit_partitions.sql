-- idnode PostgreSQL schema 3: audit_log and audit_payloads range partitioned by seq, with the
-- same bounds, so a range of the chain can be detached and archived as one unit and vacuum and
-- index maintenance stay per partition. audit_payloads too: every prefix, token, lineage event
-- and sync report keeps its payload, so with lineage traffic it grows as fast as the log.
-- Columns, keys and values are unchanged (the same rows as SQLite v8).
-- rows: v8
--
-- Partitions are made ahead of need by idnode_audit_partitions_ahead(head): when the head is
-- within one partition size (meta audit.partition_entries) of the last partition's upper bound,
-- it adds partitions of that size. The write path calls it every 100 entries, every writable
-- open and an escrow restore call it too. New partitions are attached (SHARE UPDATE EXCLUSIVE:
-- reads and inserts go on), never created with PARTITION OF (ACCESS EXCLUSIVE on the log).
-- There is no default partition: a row beyond the last one fails loudly instead of landing in
-- a partition that every later attach would have to scan.

INSERT INTO meta (key, value)
  VALUES ('audit.partition_entries', coalesce(nullif(current_setting('idnode.audit_partition_entries', true), ''), '10000000'))
  ON CONFLICT (key) DO NOTHING;

CREATE FUNCTION idnode_audit_partitions_ahead(head bigint) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  size bigint := (SELECT value::bigint FROM meta WHERE key = 'audit.partition_entries');
  hi bigint;
  made integer := 0;
  t text;
BEGIN
  -- Every audited write holds this row: partitions are added by one session at a time.
  PERFORM 1 FROM chain_head WHERE id = 1 FOR UPDATE;
  SELECT coalesce(max((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''?(-?\d+)''?\)'))[1]::bigint), 1) INTO hi
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass;
  WHILE hi <= head + size LOOP
    FOREACH t IN ARRAY ARRAY['audit_log', 'audit_payloads'] LOOP
      EXECUTE format('CREATE TABLE %I (LIKE %I)', t || '_from_' || hi, t);
      EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', t, t || '_from_' || hi, hi, hi + size);
    END LOOP;
    hi := hi + size;
    made := made + 1;
  END LOOP;
  RETURN made;
END $$;

ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;
ALTER TABLE audit_log_unpartitioned RENAME CONSTRAINT audit_log_pkey TO audit_log_unpartitioned_pkey;
ALTER TABLE audit_payloads RENAME TO audit_payloads_unpartitioned;
ALTER TABLE audit_payloads_unpartitioned RENAME CONSTRAINT audit_payloads_pkey TO audit_payloads_unpartitioned_pkey;

-- The columns in the order schemas 1 and 2 left them (escrow exports read SELECT *).
CREATE TABLE audit_log (
  seq          bigint NOT NULL,
  at           text NOT NULL,
  actor        text NOT NULL,
  action       text NOT NULL,
  target       text NOT NULL,
  digest       text NOT NULL,
  prev_hash    text NOT NULL,
  hash         text NOT NULL,
  rows_digest  text,
  write_set    text,
  PRIMARY KEY (seq)
) PARTITION BY RANGE (seq);

CREATE TABLE audit_payloads (
  seq      bigint NOT NULL,
  payload  text NOT NULL,
  PRIMARY KEY (seq)
) PARTITION BY RANGE (seq);

SELECT idnode_audit_partitions_ahead((SELECT greatest(coalesce(max(seq), 0), (SELECT seq FROM chain_head WHERE id = 1)) FROM audit_log_unpartitioned));
INSERT INTO audit_log SELECT * FROM audit_log_unpartitioned ORDER BY seq;
INSERT INTO audit_payloads SELECT * FROM audit_payloads_unpartitioned ORDER BY seq;
DROP TABLE audit_log_unpartitioned;
DROP TABLE audit_payloads_unpartitioned;
