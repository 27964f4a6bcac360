-- idnode schema v9: a record's values are stored once. The version row of a record's current
-- version holds '' instead of a copy of records.values_json; a write that replaces or deletes
-- the record first puts the old values back into that row (NULL still means a deletion). Reads
-- of versions, verification and escrow exports see the values resolved, so every row hashes as
-- it did and an export is unchanged. This rewrites the rows already stored twice.
UPDATE record_versions SET values_json = ''
  WHERE values_json IS NOT NULL AND values_json <> ''
    AND values_json = (SELECT r.values_json FROM records r WHERE r.handle_key = record_versions.handle_key AND r.version = record_versions.version);
