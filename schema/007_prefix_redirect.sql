-- idnode schema v7: a per-prefix short-URL redirect (face.redirect for the identifiers under one prefix):
-- 1 redirect, 0 show the page, NULL inherit from the nearest ancestor that sets it, else the node.
ALTER TABLE prefixes ADD COLUMN redirect INTEGER CHECK (redirect IN (0, 1));
