-- idnode schema v5: what a cold read needs besides the values, computed once at write time
-- from the values clients are served without a token (public_json, or values_json when
-- every value is public). NULL in rows written before v5 (or restored from an older escrow):
-- the resolver then computes them from the JSON, as v4 did on every miss.
ALTER TABLE records ADD COLUMN max_age INTEGER;   -- smallest relative ttl, seconds (capped at 172800; 0 for an empty list)
ALTER TABLE records ADD COLUMN expires_at INTEGER; -- earliest absolute ttl, ms since the epoch; NULL when none
ALTER TABLE records ADD COLUMN etag TEXT;          -- ETag of the public answer body
