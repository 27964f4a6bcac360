-- idnode PostgreSQL schema 1: the tables of SQLite schema v6, shaped for hundreds of millions of
-- identifiers. Values and timestamps are text exactly as the SQLite engine stores them, so answers
-- and ETags are byte-identical on both engines; keys compare bytewise (COLLATE "C") as in SQLite.
-- Applied by src/store/postgres/migrations.ts under an advisory lock, recorded in idnode_schema.
-- The line below names the SQLite schema whose tables and columns this file's result has: the
-- engine reports it as its schemaVersion (escrow manifests compare it across engines).
-- rows: v6

CREATE TABLE prefixes (
  prefix_key  text COLLATE "C" PRIMARY KEY,
  prefix      text NOT NULL,
  parent_key  text COLLATE "C" NOT NULL,
  owner_json  text NOT NULL,
  site        text,
  status      text NOT NULL CHECK (status IN ('pending', 'active', 'suspended')),
  created_at  text NOT NULL,
  updated_at  text NOT NULL
);
CREATE INDEX prefixes_by_parent ON prefixes (parent_key);

-- Hash partitions by key: point reads touch one partition; vacuum and index builds stay small.
CREATE TABLE records (
  handle_key  text COLLATE "C" NOT NULL,
  handle      text NOT NULL,
  prefix_key  text COLLATE "C" NOT NULL,
  values_json text NOT NULL,
  public_json text,
  max_age     integer,
  expires_at  bigint,
  etag        text,
  version     integer NOT NULL,
  updated_at  text NOT NULL,
  PRIMARY KEY (handle_key)
) PARTITION BY HASH (handle_key);
CREATE TABLE records_p0 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE records_p1 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE records_p2 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE records_p3 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE records_p4 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE records_p5 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE records_p6 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE records_p7 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE records_p8 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE records_p9 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE records_p10 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE records_p11 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE records_p12 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE records_p13 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE records_p14 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE records_p15 PARTITION OF records FOR VALUES WITH (MODULUS 16, REMAINDER 15);
CREATE INDEX records_by_prefix ON records (prefix_key, handle_key);

-- Records per prefix, kept by the write transaction: count(*) over millions of rows is a scan.
CREATE TABLE record_counts (
  prefix_key  text COLLATE "C" PRIMARY KEY,
  n           bigint NOT NULL
);

CREATE TABLE record_versions (
  handle_key  text COLLATE "C" NOT NULL,
  version     integer NOT NULL,
  handle      text NOT NULL,
  at          text NOT NULL,
  actor       text NOT NULL,
  action      text NOT NULL,
  values_json text,
  audit_seq   bigint NOT NULL,
  PRIMARY KEY (handle_key, version)
) PARTITION BY HASH (handle_key);
CREATE TABLE record_versions_p0 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE record_versions_p1 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE record_versions_p2 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE record_versions_p3 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE record_versions_p4 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE record_versions_p5 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE record_versions_p6 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE record_versions_p7 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE record_versions_p8 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE record_versions_p9 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE record_versions_p10 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE record_versions_p11 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE record_versions_p12 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE record_versions_p13 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE record_versions_p14 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE record_versions_p15 PARTITION OF record_versions FOR VALUES WITH (MODULUS 16, REMAINDER 15);
CREATE INDEX record_versions_by_seq ON record_versions (audit_seq);

-- hash = sha256(prev_hash || "\n" || JSON [seq, at, actor, action, target, digest]).
CREATE TABLE audit_log (
  seq        bigint PRIMARY KEY,
  at         text NOT NULL,
  actor      text NOT NULL,
  action     text NOT NULL,
  target     text NOT NULL,
  digest     text NOT NULL,
  prev_hash  text NOT NULL,
  hash       text NOT NULL
);

CREATE TABLE audit_payloads (
  seq      bigint PRIMARY KEY,
  payload  text NOT NULL
);

-- The one row every write transaction takes FOR UPDATE first: the chain's head and the change
-- feed's last id. seq = head + 1 under the lock keeps the chain gapless with writers in many
-- processes (a SEQUENCE leaves gaps after rollbacks); the feed's ids stay contiguous the same way.
CREATE TABLE chain_head (
  id         integer PRIMARY KEY CHECK (id = 1),
  seq        bigint NOT NULL,
  hash       text NOT NULL,
  change_id  bigint NOT NULL
);
INSERT INTO chain_head (id, seq, hash, change_id) VALUES (1, 0, repeat('0', 64), 0);

CREATE TABLE tokens (
  id            text COLLATE "C" PRIMARY KEY,
  role          text NOT NULL CHECK (role IN ('admin', 'registrar', 'auditor', 'node')),
  prefixes_json text NOT NULL,
  secret_hash   text COLLATE "C" NOT NULL UNIQUE,
  label         text,
  created_at    text NOT NULL,
  revoked_at    text
);

-- Ids of events, edges, outbox and sync_reports are max(id) + 1 under the chain head's lock,
-- as SQLite's rowids are: no sequence to reset after an escrow restore.
CREATE TABLE events (
  id           bigint PRIMARY KEY,
  type         text NOT NULL CHECK (type IN ('aggregation', 'transformation')),
  action       text,
  event_time   text NOT NULL,
  record_time  text NOT NULL,
  actor        text NOT NULL,
  body_json    text NOT NULL,
  audit_seq    bigint NOT NULL
);

CREATE TABLE edges (
  id           bigint PRIMARY KEY,
  from_key     text COLLATE "C" NOT NULL,
  to_key       text COLLATE "C" NOT NULL,
  type         text NOT NULL,
  since        text NOT NULL,
  until        text,
  event_id     bigint NOT NULL,
  until_event  bigint
);
CREATE INDEX edges_down ON edges (from_key, to_key);
CREATE INDEX edges_up ON edges (to_key, from_key);

CREATE TABLE lineage_names (
  key     text COLLATE "C" PRIMARY KEY,
  handle  text NOT NULL
);

CREATE TABLE outbox (
  id               bigint PRIMARY KEY,
  kind             text NOT NULL,
  idem_key         text COLLATE "C" NOT NULL UNIQUE,
  body_json        text NOT NULL,
  state            text NOT NULL CHECK (state IN ('pending', 'sent', 'rejected')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  bigint NOT NULL,
  last_error       text,
  created_at       text NOT NULL,
  done_at          text
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE sync_reports (
  id           bigint PRIMARY KEY,
  reporter     text COLLATE "C" NOT NULL,
  idem_key     text COLLATE "C" NOT NULL,
  kind         text NOT NULL,
  body_json    text NOT NULL,
  outcome      text NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
  message      text,
  received_at  text NOT NULL,
  UNIQUE (reporter, idem_key)
);

CREATE TABLE templates (
  prefix_key  text COLLATE "C" NOT NULL,
  version     text COLLATE "C" NOT NULL,
  prefix      text NOT NULL,
  body_json   text NOT NULL,
  used        smallint NOT NULL DEFAULT 0,
  created_at  text NOT NULL,
  updated_at  text NOT NULL,
  PRIMARY KEY (prefix_key, version)
);

-- The change feed (ids from chain_head.change_id: contiguous, never reused).
CREATE TABLE changes (
  id         bigint PRIMARY KEY,
  audit_seq  bigint,
  kind       text NOT NULL CHECK (kind IN ('record', 'prefix', 'template', 'token')),
  key        text NOT NULL
);
