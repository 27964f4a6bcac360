-- idnode schema v1. Applied once, in a transaction, when PRAGMA user_version < 1.

-- Prefixes this node hosts or delegates (homed prefixes come from config, not from here).
CREATE TABLE prefixes (
  prefix_key  TEXT PRIMARY KEY,          -- ASCII-lowercased
  prefix      TEXT NOT NULL,             -- spelling as created
  parent_key  TEXT NOT NULL,
  owner_json  TEXT NOT NULL,
  site        TEXT,                      -- base URL when delegated, NULL when hosted here
  status      TEXT NOT NULL CHECK (status IN ('pending', 'active', 'suspended')),
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX prefixes_by_parent ON prefixes (parent_key);

-- Current records. values_json is the Handle value list exactly as sent to clients;
-- public_json the same list without non-public values (NULL when every value is public).
CREATE TABLE records (
  id          INTEGER PRIMARY KEY,
  handle_key  TEXT NOT NULL UNIQUE,
  handle      TEXT NOT NULL,
  prefix_key  TEXT NOT NULL,
  values_json TEXT NOT NULL,
  public_json TEXT,
  version     INTEGER NOT NULL,
  updated_at  TEXT NOT NULL
);
CREATE INDEX records_by_prefix ON records (prefix_key, handle_key);

-- Every version of every record (NULL values_json: deleted).
CREATE TABLE record_versions (
  handle_key  TEXT NOT NULL,
  version     INTEGER NOT NULL,
  handle      TEXT NOT NULL,
  at          TEXT NOT NULL,
  actor       TEXT NOT NULL,
  action      TEXT NOT NULL,
  values_json TEXT,
  audit_seq   INTEGER NOT NULL,
  PRIMARY KEY (handle_key, version)
) WITHOUT ROWID;

-- Append-only, hash-chained log of every write.
-- hash = sha256(prev_hash || "\n" || JSON [seq, at, actor, action, target, digest]).
CREATE TABLE audit_log (
  seq        INTEGER PRIMARY KEY,
  at         TEXT NOT NULL,
  actor      TEXT NOT NULL,
  action     TEXT NOT NULL,
  target     TEXT NOT NULL,
  digest     TEXT NOT NULL,
  prev_hash  TEXT NOT NULL,
  hash       TEXT NOT NULL
);

-- Tokens: only a SHA-256 of the secret is stored.
CREATE TABLE tokens (
  id            TEXT PRIMARY KEY,
  role          TEXT NOT NULL CHECK (role IN ('admin', 'registrar', 'auditor', 'node')),
  prefixes_json TEXT NOT NULL,
  secret_hash   TEXT NOT NULL UNIQUE,
  label         TEXT,
  created_at    TEXT NOT NULL,
  revoked_at    TEXT
) WITHOUT ROWID;

CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
