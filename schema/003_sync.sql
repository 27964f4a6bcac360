-- idnode schema v3: sync reports between nodes.

-- Reports this node owes its upstream, written in the same transaction as the change they
-- report; a worker sends them with retries until the upstream answers.
CREATE TABLE outbox (
  id               INTEGER PRIMARY KEY,
  kind             TEXT NOT NULL,                -- prefix | stats
  idem_key         TEXT NOT NULL UNIQUE,
  body_json        TEXT NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'rejected')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER NOT NULL,             -- ms since the epoch
  last_error       TEXT,
  created_at       TEXT NOT NULL,
  done_at          TEXT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Reports received from child nodes; (reporter, idem_key) makes a re-sent report a no-op.
CREATE TABLE sync_reports (
  id           INTEGER PRIMARY KEY,
  reporter     TEXT NOT NULL,                    -- the node token's id
  idem_key     TEXT NOT NULL,
  kind         TEXT NOT NULL,
  body_json    TEXT NOT NULL,
  outcome      TEXT NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
  message      TEXT,
  received_at  TEXT NOT NULL,
  UNIQUE (reporter, idem_key)
);
