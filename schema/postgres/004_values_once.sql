-- idnode PostgreSQL schema 4: a record's values are stored once, as SQLite v9 does. The version
-- row of a record's current version holds '' instead of a copy of records.values_json; a write
-- that replaces or deletes the record first puts the old values back into that row (NULL still
-- means a deletion). Reads of versions, verification and escrow exports see the values
-- resolved, so every row hashes as it did. This rewrites the rows already stored twice.
-- rows: v9
UPDATE record_versions v SET values_json = ''
  FROM records r
  WHERE r.handle_key = v.handle_key AND r.version = v.version AND v.values_json <> '' AND v.values_json = r.values_json;
