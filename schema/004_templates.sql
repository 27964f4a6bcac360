-- idnode schema v4: metadata templates (IDIS), versioned per prefix.
CREATE TABLE templates (
  prefix_key  TEXT NOT NULL,
  version     TEXT NOT NULL,
  prefix      TEXT NOT NULL,
  body_json   TEXT NOT NULL,                 -- {"name"?, "industryCode"?, "items": [...]}
  used        INTEGER NOT NULL DEFAULT 0,    -- 1 once a record names this version: immutable
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (prefix_key, version)
) WITHOUT ROWID;
