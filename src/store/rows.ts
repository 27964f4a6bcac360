/**
 * The rows an engine stores and answers, one shape per table, and the one record row both
 * engines build for a put.
 */
export interface RecordRow {
  handleKey: string;
  handle: string;
  prefixKey: string;
  valuesJson: string;
  publicJson: string | null;
  /** Public answer's metadata (schema v5); null in rows written before it. */
  maxAge: number | null;
  expiresAt: number | null;
  etag: string | null;
  version: number;
  updatedAt: string;
}

/** The records row a put of `row` stores at `version` (an update keeps its row's prefix: each engine sets that). */
export function putRow(row: Omit<RecordRow, 'version' | 'updatedAt'>, version: number, at: string): RecordRow {
  return {
    handleKey: row.handleKey,
    handle: row.handle,
    prefixKey: row.prefixKey,
    valuesJson: row.valuesJson,
    publicJson: row.publicJson ?? null,
    maxAge: row.maxAge ?? null,
    expiresAt: row.expiresAt ?? null,
    etag: row.etag ?? null,
    version,
    updatedAt: at,
  };
}

/** handle, values_json, public_json, max_age, expires_at, etag. */
export type AnswerRow = [string, string, string | null, number | null, number | null, string | null];

export interface PrefixRow {
  prefixKey: string;
  prefix: string;
  parentKey: string;
  ownerJson: string;
  site: string | null;
  status: 'pending' | 'active' | 'suspended';
  createdAt: string;
  updatedAt: string;
  /** Short URLs under this prefix redirect (true) or show the page (false); null or absent: inherited. */
  redirect?: boolean | null;
}

export interface TokenRow {
  id: string;
  role: 'admin' | 'registrar' | 'auditor' | 'node';
  prefixesJson: string;
  secretHash: string;
  label: string | null;
  createdAt: string;
  revokedAt: string | null;
}

export interface AuditRow {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  digest: string;
  /**
   * SHA-256 of the entry's write set (schema v8): the rows it left in each audited table. Part
   * of the hash when present; null (or absent) in entries written before v8.
   */
  rowsDigest?: string | null;
  prevHash: string;
  hash: string;
}

/** An entry as verification reads it: with its kept payload and its write set's text. */
export interface AuditEntryFull extends AuditRow {
  payload: string | null;
  writeSet: string | null;
}

/** A record version as the legacy digest check of an entry reads it. */
export interface EntryVersion {
  handleKey: string;
  version: number;
  handle: string;
  valuesJson: string | null;
}

export interface WriteEntry {
  actor: string;
  action: string;
  target: string;
}

export interface VersionRow {
  version: number;
  handle: string;
  at: string;
  actor: string;
  action: string;
  valuesJson: string | null;
  auditSeq: number;
}

export interface EdgeRow {
  id: number;
  fromKey: string;
  toKey: string;
  type: string;
  since: string;
  until: string | null;
  eventId: number;
}

export interface WalkRow {
  key: string;
  depth: number;
  recordHandle: string | null;
  namedHandle: string | null;
  /** 1 when this row is at the depth limit and edges lead on from it. */
  more: 0 | 1;
  /** The edge this row was reached by (null for the root). */
  edgeId: number | null;
  fromKey: string | null;
  toKey: string | null;
  type: string | null;
  since: string | null;
  until: string | null;
  eventId: number | null;
}

export interface OutboxRow {
  id: number;
  kind: string;
  idemKey: string;
  bodyJson: string;
  state: 'pending' | 'sent' | 'rejected';
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  createdAt: string;
  doneAt: string | null;
}

export interface ReportRow {
  id: number;
  reporter: string;
  idemKey: string;
  kind: string;
  bodyJson: string;
  outcome: 'accepted' | 'rejected';
  message: string | null;
  receivedAt: string;
}

export interface TemplateRow {
  prefixKey: string;
  version: string;
  prefix: string;
  bodyJson: string;
  used: 0 | 1;
  createdAt: string;
  updatedAt: string;
}

export interface EventRow {
  type: 'aggregation' | 'transformation';
  action: string | null;
  eventTime: string;
  bodyJson: string;
}

/** What `verifyAudit` found: the first broken entry, if any. */
export interface AuditVerdict {
  ok: boolean;
  checked: number;
  firstBroken?: {
    seq: number;
    reason: string;
    /** The table and key (JSON array) of a row that differs from what the log wrote. */
    table?: string;
    key?: string;
  };
}

/** How far a running verification is: entries of the chain, then rows of the tables. */
export interface VerifyProgress {
  phase: 'chain' | 'tables';
  checked: number;
  total: number;
  rows: number;
}

/** What a change-feed row names: the cached state a write made stale. */
export type ChangeKind = 'record' | 'prefix' | 'template' | 'token';

export interface ChangeRow {
  /** The feed's cursor: increasing, never reused. */
  id: number;
  /** The audit entry of the write (null with history off). */
  auditSeq: number | null;
  kind: ChangeKind;
  /** Handle key, prefix key, `prefixKey@version` or token id. */
  key: string;
}
