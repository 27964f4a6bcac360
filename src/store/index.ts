/**
 * The only module that imports better-sqlite3. WAL, statements prepared once, every write
 * through `write()`: one IMMEDIATE transaction that applies the change and appends the
 * hash-chained audit entry (and, for records, the version row) before it commits.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { IdnError } from '../errors.js';
import { SCHEMA_DIR } from '../paths.js';

export const GENESIS_HASH = '0'.repeat(64);
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
  prevHash: string;
  hash: string;
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
  firstBroken?: { seq: number; reason: string };
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

/** The line a record version contributes to its audit digest (values null: deleted). */
export function versionLine(handle: string, valuesJson: string | null): string {
  return `${handle}\n${valuesJson ?? ''}`;
}

/** What `apply` returns: payload null means nothing was written (no audit entry). */
export interface WriteOutcome<T> {
  result: T;
  payload: string | null;
  /** Overrides the entry's action once apply knows what it did (create vs update). */
  action?: string;
  /** Keep the payload itself (prefixes, tokens, events) so verification can check it. */
  keepPayload?: boolean;
}

/** What a write may do; only reachable inside `Store.write`. */
export interface WriteTx {
  readonly at: string;
  /** The audit sequence number this write's entry will have. */
  readonly seq: number;
  /** Stores a record version (values null = deleted) and makes it current. */
  putRecord(row: Omit<RecordRow, 'version' | 'updatedAt'>): number;
  deleteRecord(handleKey: string, handle: string): number;
  putPrefix(row: PrefixRow): void;
  deletePrefix(prefixKey: string): void;
  insertToken(row: TokenRow): void;
  revokeToken(id: string): void;
  insertEvent(row: EventRow): number;
  /** Opens an edge; returns false when an open edge from→to (same type) already exists. */
  openEdge(fromKey: string, toKey: string, type: string, since: string, eventId: number): boolean;
  /** Closes the open edge from→to valid at `until`; returns false when there is none. */
  closeEdge(fromKey: string, toKey: string, type: string, until: string, eventId: number): boolean;
  /** Open edges from `fromKey` of `type` (an aggregation DELETE with no children empties the parent). */
  openChildren(fromKey: string, type: string): string[];
  /** Remembers the spelling an identifier was first named with in an event. */
  nameIdentifier(key: string, handle: string): void;
  /** Queues a report for the upstream, sent after this write commits. */
  enqueueReport(kind: string, idemKey: string, bodyJson: string): void;
  /** Stores a report received from a child node. */
  insertReport(row: Omit<ReportRow, 'id' | 'receivedAt'>): number;
  putTemplate(row: TemplateRow): void;
  markTemplateUsed(prefixKey: string, version: string): void;
  /**
   * Records a change in the feed. The methods above record theirs themselves; this is for a
   * write that changes cached state some other way.
   */
  changed(kind: ChangeKind, key: string): void;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function auditHash(prevHash: string, e: Omit<AuditRow, 'hash' | 'prevHash'>): string {
  return sha256(`${prevHash}\n${JSON.stringify([e.seq, e.at, e.actor, e.action, e.target, e.digest])}`);
}

export function isoSeconds(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

export interface StoreOptions {
  now?: () => Date;
  readonly?: boolean;
  /**
   * Keep record versions and the audit chain (default true). Off only for throwaway nodes
   * (the registration benchmark measures what they cost).
   */
  history?: boolean;
  /** Called with the duration of every committed write, ms (metrics). */
  onWrite?: (ms: number) => void;
  /** SQLite page cache of this connection, bytes (default 64 MiB). */
  cacheBytes?: number;
  /** Bytes of the file SQLite reads through mmap instead of read() calls (default 1 GiB; 0: off). */
  mmapBytes?: number;
  /** Change-feed rows kept (default 100000); a follower further behind drops its whole cache. */
  changesRetention?: number;
}

/** The schema version this code expects (the highest schema/NNN_*.sql). */
export function latestSchemaVersion(): number {
  return Math.max(
    0,
    ...readdirSync(SCHEMA_DIR)
      .filter((f) => /^\d{3}_.*\.sql$/.test(f))
      .map((f) => Number(f.slice(0, 3))),
  );
}

export class Store {
  readonly db: Database.Database;
  readonly path: string;
  readonly history: boolean;
  private readonly onWrite: ((ms: number) => void) | undefined;
  private readonly now: () => Date;
  private readonly changesRetention: number;
  /** Called synchronously after each commit of this connection that recorded changes. */
  private readonly committed = new Set<() => void>();
  private readonly stmt;

  constructor(path: string, opts: StoreOptions = {}) {
    this.path = path;
    this.now = opts.now ?? (() => new Date());
    this.history = opts.history ?? true;
    this.onWrite = opts.onWrite;
    this.changesRetention = Math.max(1, opts.changesRetention ?? 100_000);
    if (path !== ':memory:' && !opts.readonly) mkdirSync(dirname(path), { recursive: true });
    try {
      this.db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    } catch (err) {
      throw new IdnError('IDN_INTERNAL', `cannot open database ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (!opts.readonly) {
      this.db.pragma('journal_mode = WAL');
      // FULL: a write acknowledged to a client survives power loss, not only a crash.
      this.db.pragma('synchronous = FULL');
      // Checkpoint every ~40 MB of WAL rather than 4 MB: bulk chunks rewrite the same index pages.
      this.db.pragma('wal_autocheckpoint = 10000');
    }
    this.db.pragma('busy_timeout = 5000');
    // A point lookup on a large file costs read() system calls unless pages are cached or mapped.
    this.db.pragma(`cache_size = -${Math.floor((opts.cacheBytes ?? 64 * 1024 * 1024) / 1024)}`);
    this.db.pragma(`mmap_size = ${opts.mmapBytes ?? 2 * 1024 ** 3}`);
    this.db.pragma('foreign_keys = ON');
    if (!opts.readonly) this.migrate();
    else if (this.schemaVersion < latestSchemaVersion()) {
      const found = this.schemaVersion;
      this.db.close();
      throw new IdnError(
        'IDN_INTERNAL',
        `database ${path} has schema v${found}, older than this idnode's v${latestSchemaVersion()}; start a node on it once to migrate`,
      );
    }
    const db = this.db;
    /** The lineage walk one way: from `self` along edges to `next`, one row per (identifier, depth, edge). */
    const walkStatement = (self: string, next: string) =>
      db.prepare(
        `WITH RECURSIVE walk(key, depth, edge) AS (
           VALUES (@root, 0, NULL)
           UNION
           SELECT e.${next}, w.depth + 1, e.id FROM walk w JOIN edges e ON e.${self} = w.key
           WHERE w.depth < @depth AND e.since <= @asOf AND (e.until IS NULL OR e.until > @asOf)
           LIMIT @limit)
         SELECT w.key, w.depth, r.handle AS recordHandle,
           CASE WHEN r.handle IS NULL THEN (SELECT handle FROM lineage_names n WHERE n.key = w.key) END AS namedHandle,
           CASE WHEN w.depth = @depth THEN EXISTS (SELECT 1 FROM edges x WHERE x.${self} = w.key AND x.since <= @asOf
             AND (x.until IS NULL OR x.until > @asOf)) ELSE 0 END AS more,
           e.id AS edgeId, e.from_key AS fromKey, e.to_key AS toKey, e.type, e.since, e.until, e.event_id AS eventId
         FROM walk w LEFT JOIN records r ON r.handle_key = w.key LEFT JOIN edges e ON e.id = w.edge`,
      );
    /** Edges valid at @asOf whose `end` is one of @keys. */
    const edgesStatement = (end: string) =>
      db.prepare(
        `SELECT id, from_key AS fromKey, to_key AS toKey, type, since, until, event_id AS eventId FROM edges
         WHERE ${end} IN (SELECT value FROM json_each(@keys)) AND since <= @asOf AND (until IS NULL OR until > @asOf) LIMIT @limit`,
      );
    this.stmt = {
      getRecord: db.prepare(
        'SELECT handle_key AS handleKey, handle, prefix_key AS prefixKey, values_json AS valuesJson, public_json AS publicJson, max_age AS maxAge, expires_at AS expiresAt, etag, version, updated_at AS updatedAt FROM records WHERE handle_key = ?',
      ),
      answerRow: db.prepare('SELECT handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE handle_key = ?').raw(),
      listRecords: db.prepare('SELECT handle FROM records WHERE prefix_key = ? ORDER BY handle_key LIMIT ? OFFSET ?').pluck(),
      countRecords: db.prepare('SELECT count(*) FROM records WHERE prefix_key = ?').pluck(),
      countUnder: db.prepare("SELECT count(*) FROM records WHERE prefix_key = ? OR (prefix_key > ? || '.' AND prefix_key < ? || '/')").pluck(),
      lastVersion: db.prepare('SELECT max(version) FROM record_versions WHERE handle_key = ?').pluck(),
      currentVersion: db.prepare('SELECT version FROM records WHERE handle_key = ?').pluck(),
      versions: db.prepare(
        'SELECT version, handle, at, actor, action, values_json AS valuesJson, audit_seq AS auditSeq FROM record_versions WHERE handle_key = ? AND version > ? ORDER BY version LIMIT ?',
      ),
      versionAsOf: db.prepare(
        'SELECT version, handle, at, actor, action, values_json AS valuesJson, audit_seq AS auditSeq FROM record_versions WHERE handle_key = ? AND at <= ? ORDER BY version DESC LIMIT 1',
      ),
      versionsBySeq: db.prepare('SELECT handle_key AS handleKey, version, handle, values_json AS valuesJson FROM record_versions WHERE audit_seq = ?'),
      auditPage: db.prepare('SELECT seq, at, actor, action, target, digest, prev_hash AS prevHash, hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?'),
      auditWithPayload: db.prepare(
        `SELECT a.seq, a.at, a.actor, a.action, a.target, a.digest, a.prev_hash AS prevHash, a.hash, p.payload
         FROM audit_log a LEFT JOIN audit_payloads p ON p.seq = a.seq WHERE a.seq > ? ORDER BY a.seq LIMIT ?`,
      ),
      orphanPayload: db.prepare('SELECT min(seq) FROM audit_payloads WHERE seq NOT IN (SELECT seq FROM audit_log)').pluck(),
      insertPayload: db.prepare('INSERT INTO audit_payloads (seq, payload) VALUES (?, ?)'),
      insertEvent: db.prepare('INSERT INTO events (type, action, event_time, record_time, actor, body_json, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      openEdgeExists: db.prepare('SELECT 1 FROM edges WHERE from_key = ? AND to_key = ? AND type = ? AND until IS NULL LIMIT 1').pluck(),
      insertEdge: db.prepare('INSERT INTO edges (from_key, to_key, type, since, until, event_id) VALUES (?, ?, ?, ?, NULL, ?)'),
      closeEdge: db.prepare(
        `UPDATE edges SET until = @until, until_event = @eventId WHERE id = (SELECT id FROM edges WHERE from_key = @fromKey AND to_key = @toKey
           AND type = @type AND until IS NULL AND since <= @until ORDER BY since DESC LIMIT 1)`,
      ),
      openChildren: db.prepare('SELECT DISTINCT to_key FROM edges WHERE from_key = ? AND type = ? AND until IS NULL').pluck(),
      nameIdentifier: db.prepare('INSERT OR IGNORE INTO lineage_names (key, handle) VALUES (?, ?)'),
      putTemplate: db.prepare(
        `INSERT INTO templates (prefix_key, version, prefix, body_json, used, created_at, updated_at)
         VALUES (@prefixKey, @version, @prefix, @bodyJson, @used, @createdAt, @updatedAt)
         ON CONFLICT (prefix_key, version) DO UPDATE SET body_json = excluded.body_json, updated_at = excluded.updated_at`,
      ),
      markTemplateUsed: db.prepare('UPDATE templates SET used = 1 WHERE prefix_key = ? AND version = ? AND used = 0'),
      allTemplates: db.prepare(
        'SELECT prefix_key AS prefixKey, version, prefix, body_json AS bodyJson, used, created_at AS createdAt, updated_at AS updatedAt FROM templates ORDER BY prefix_key, created_at, version',
      ),
      enqueue: db.prepare("INSERT INTO outbox (kind, idem_key, body_json, state, attempts, next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', 0, 0, ?)"),
      dueReports: db.prepare(
        `SELECT id, kind, idem_key AS idemKey, body_json AS bodyJson, state, attempts, next_attempt_at AS nextAttemptAt, last_error AS lastError,
           created_at AS createdAt, done_at AS doneAt FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?`,
      ),
      outbox: db.prepare(
        `SELECT id, kind, idem_key AS idemKey, body_json AS bodyJson, state, attempts, next_attempt_at AS nextAttemptAt, last_error AS lastError,
           created_at AS createdAt, done_at AS doneAt FROM outbox WHERE id > ? ORDER BY id LIMIT ?`,
      ),
      pendingCount: db.prepare("SELECT count(*) FROM outbox WHERE state = 'pending'").pluck(),
      reportDone: db.prepare('UPDATE outbox SET state = ?, done_at = ?, last_error = ?, attempts = attempts + 1 WHERE id = ?'),
      reportRetry: db.prepare('UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?'),
      insertReport: db.prepare(
        'INSERT INTO sync_reports (reporter, idem_key, kind, body_json, outcome, message, received_at) VALUES (@reporter, @idemKey, @kind, @bodyJson, @outcome, @message, @receivedAt)',
      ),
      reportByKey: db.prepare(
        `SELECT id, reporter, idem_key AS idemKey, kind, body_json AS bodyJson, outcome, message, received_at AS receivedAt
         FROM sync_reports WHERE reporter = ? AND idem_key = ?`,
      ),
      reports: db.prepare(
        `SELECT id, reporter, idem_key AS idemKey, kind, body_json AS bodyJson, outcome, message, received_at AS receivedAt
         FROM sync_reports WHERE id > ? ORDER BY id LIMIT ?`,
      ),
      walkDown: walkStatement('from_key', 'to_key'),
      walkUp: walkStatement('to_key', 'from_key'),
      edgesFrom: edgesStatement('from_key'),
      edgesTo: edgesStatement('to_key'),
      upsertRecord: db.prepare(
        `INSERT INTO records (handle_key, handle, prefix_key, values_json, public_json, max_age, expires_at, etag, version, updated_at)
         VALUES (@handleKey, @handle, @prefixKey, @valuesJson, @publicJson, @maxAge, @expiresAt, @etag, @version, @updatedAt)
         ON CONFLICT (handle_key) DO UPDATE SET handle = excluded.handle, values_json = excluded.values_json,
           public_json = excluded.public_json, max_age = excluded.max_age, expires_at = excluded.expires_at, etag = excluded.etag,
           version = excluded.version, updated_at = excluded.updated_at`,
      ),
      deleteRecord: db.prepare('DELETE FROM records WHERE handle_key = ?'),
      insertVersion: db.prepare(
        'INSERT INTO record_versions (handle_key, version, handle, at, actor, action, values_json, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      getPrefix: db.prepare(
        'SELECT prefix_key AS prefixKey, prefix, parent_key AS parentKey, owner_json AS ownerJson, site, status, created_at AS createdAt, updated_at AS updatedAt FROM prefixes WHERE prefix_key = ?',
      ),
      allPrefixes: db.prepare(
        'SELECT prefix_key AS prefixKey, prefix, parent_key AS parentKey, owner_json AS ownerJson, site, status, created_at AS createdAt, updated_at AS updatedAt FROM prefixes ORDER BY prefix_key',
      ),
      putPrefix: db.prepare(
        `INSERT INTO prefixes (prefix_key, prefix, parent_key, owner_json, site, status, created_at, updated_at)
         VALUES (@prefixKey, @prefix, @parentKey, @ownerJson, @site, @status, @createdAt, @updatedAt)
         ON CONFLICT (prefix_key) DO UPDATE SET owner_json = excluded.owner_json, site = excluded.site,
           status = excluded.status, updated_at = excluded.updated_at`,
      ),
      deletePrefix: db.prepare('DELETE FROM prefixes WHERE prefix_key = ?'),
      tokenByHash: db.prepare(
        'SELECT id, role, prefixes_json AS prefixesJson, secret_hash AS secretHash, label, created_at AS createdAt, revoked_at AS revokedAt FROM tokens WHERE secret_hash = ?',
      ),
      tokenById: db.prepare(
        'SELECT id, role, prefixes_json AS prefixesJson, secret_hash AS secretHash, label, created_at AS createdAt, revoked_at AS revokedAt FROM tokens WHERE id = ?',
      ),
      listTokens: db.prepare(
        'SELECT id, role, prefixes_json AS prefixesJson, secret_hash AS secretHash, label, created_at AS createdAt, revoked_at AS revokedAt FROM tokens ORDER BY created_at, id',
      ),
      activeAdminCount: db.prepare("SELECT count(*) FROM tokens WHERE role = 'admin' AND revoked_at IS NULL").pluck(),
      insertToken: db.prepare(
        'INSERT INTO tokens (id, role, prefixes_json, secret_hash, label, created_at, revoked_at) VALUES (@id, @role, @prefixesJson, @secretHash, @label, @createdAt, @revokedAt)',
      ),
      revokeToken: db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      auditHead: db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1'),
      insertAudit: db.prepare(
        'INSERT INTO audit_log (seq, at, actor, action, target, digest, prev_hash, hash) VALUES (@seq, @at, @actor, @action, @target, @digest, @prevHash, @hash)',
      ),
      recordCount: db.prepare('SELECT count(*) FROM records').pluck(),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      insertChange: db.prepare('INSERT INTO changes (audit_seq, kind, key) VALUES (?, ?, ?)'),
      pruneChanges: db.prepare('DELETE FROM changes WHERE id <= ?'),
      changesAfter: db.prepare('SELECT id, audit_seq AS auditSeq, kind, key FROM changes WHERE id > ? ORDER BY id LIMIT ?'),
      changesHead: db.prepare('SELECT max(id) FROM changes').pluck(),
      versionsOutsideLog: db.prepare('SELECT min(audit_seq) FROM record_versions WHERE audit_seq NOT IN (SELECT seq FROM audit_log)').pluck(),
    };
  }

  private migrate(): void {
    const files = readdirSync(SCHEMA_DIR)
      .filter((f) => /^\d{3}_.*\.sql$/.test(f))
      .sort();
    const current = this.db.pragma('user_version', { simple: true }) as number;
    for (const file of files) {
      const version = Number(file.slice(0, 3));
      if (version <= current) continue;
      const sql = readFileSync(join(SCHEMA_DIR, file), 'utf8');
      this.db
        .transaction(() => {
          this.db.exec(sql);
          this.db.pragma(`user_version = ${version}`);
        })
        .immediate();
    }
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  getRecord(handleKey: string): RecordRow | undefined {
    return this.stmt.getRecord.get(handleKey) as RecordRow | undefined;
  }

  /** What a resolution needs of a record, as an array (the cold-read path: no row object, no unused columns). */
  answerRow(handleKey: string): AnswerRow | undefined {
    return this.stmt.answerRow.get(handleKey) as AnswerRow | undefined;
  }

  listRecordHandles(prefixKey: string, limit: number, offset: number): string[] {
    return this.stmt.listRecords.all(prefixKey, limit, offset) as string[];
  }

  countRecords(prefixKey: string): number {
    return this.stmt.countRecords.get(prefixKey) as number;
  }

  /** Records whose prefix is `prefixKey` or lies under it. */
  countRecordsUnder(prefixKey: string): number {
    return this.stmt.countUnder.get(prefixKey, prefixKey, prefixKey) as number;
  }

  totalRecords(): number {
    return this.stmt.recordCount.get() as number;
  }

  getPrefix(prefixKey: string): PrefixRow | undefined {
    return this.stmt.getPrefix.get(prefixKey) as PrefixRow | undefined;
  }

  allPrefixes(): PrefixRow[] {
    return this.stmt.allPrefixes.all() as PrefixRow[];
  }

  tokenByHash(hash: string): TokenRow | undefined {
    return this.stmt.tokenByHash.get(hash) as TokenRow | undefined;
  }

  tokenById(id: string): TokenRow | undefined {
    return this.stmt.tokenById.get(id) as TokenRow | undefined;
  }

  listTokens(): TokenRow[] {
    return this.stmt.listTokens.all() as TokenRow[];
  }

  activeAdminCount(): number {
    return this.stmt.activeAdminCount.get() as number;
  }

  /** Versions of a record after `afterVersion`, oldest first, at most `limit`. */
  versions(handleKey: string, afterVersion: number, limit: number): VersionRow[] {
    return this.stmt.versions.all(handleKey, afterVersion, limit) as VersionRow[];
  }

  /** The version current at `at` (ISO seconds), deleted ones included. */
  versionAsOf(handleKey: string, at: string): VersionRow | undefined {
    return this.stmt.versionAsOf.get(handleKey, at) as VersionRow | undefined;
  }

  auditPage(afterSeq: number, limit: number): AuditRow[] {
    return this.stmt.auditPage.all(afterSeq, limit) as AuditRow[];
  }

  /**
   * Walks the whole chain: seq contiguous from 1, each prev_hash the previous hash, each hash
   * recomputed, each kept payload and each record version matching the entry's digest.
   * Reads in pages so a long log never holds a statement open across checks.
   */
  verifyAudit(): AuditVerdict {
    const page = 1000;
    let prevHash = GENESIS_HASH;
    let expected = 1;
    for (;;) {
      const rows = this.stmt.auditWithPayload.all(expected - 1, page) as Array<AuditRow & { payload: string | null }>;
      for (const row of rows) {
        const broken = (reason: string): AuditVerdict => ({ ok: false, checked: expected - 1, firstBroken: { seq: row.seq, reason } });
        if (row.seq !== expected)
          return {
            ok: false,
            checked: expected - 1,
            firstBroken: { seq: expected, reason: `entry ${expected} is missing (deleted); the next entry is ${row.seq}` },
          };
        if (row.prevHash !== prevHash) return broken("prev_hash is not the previous entry's hash (an entry before it was removed, inserted or rewritten)");
        if (auditHash(prevHash, row) !== row.hash) return broken('hash does not match the entry (seq, at, actor, action, target or digest was edited)');
        if (row.payload !== null && sha256(row.payload) !== row.digest) return broken('the stored payload does not match the digest (the payload was edited)');
        const problem = this.versionProblem(row);
        if (problem !== undefined) return broken(problem);
        prevHash = row.hash;
        expected++;
      }
      if (rows.length < page) break;
    }
    const stray = this.stmt.versionsOutsideLog.get() as number | null;
    if (stray !== null)
      return {
        ok: false,
        checked: expected - 1,
        firstBroken: { seq: stray, reason: 'record versions name an entry that is not in the log (a version was inserted or its entry deleted)' },
      };
    const orphan = this.stmt.orphanPayload.get() as number | null;
    if (orphan !== null)
      return {
        ok: false,
        checked: expected - 1,
        firstBroken: { seq: orphan, reason: 'a payload exists for an entry that is not in the log (the entry was deleted)' },
      };
    return { ok: true, checked: expected - 1 };
  }

  /**
   * Whether the record versions an entry wrote match its digest, whatever its action: a
   * record write's digest is its one version line; a bulk chunk's, its versions' lines in key
   * order; any other entry that wrote versions (seeding) keeps its payload, which starts with
   * those lines in key order.
   */
  private versionProblem(row: AuditRow & { payload: string | null }): string | undefined {
    const versions = this.stmt.versionsBySeq.all(row.seq) as Array<{ handle: string; valuesJson: string | null; handleKey: string; version: number }>;
    if (row.action.startsWith('record.')) {
      if (versions.length !== 1 || sha256(versionLine(versions[0]!.handle, versions[0]!.valuesJson)) !== row.digest)
        return 'the record version this entry wrote does not match its digest (record_versions was edited)';
      return undefined;
    }
    versions.sort((a, b) => (a.handleKey < b.handleKey ? -1 : a.handleKey > b.handleKey ? 1 : a.version - b.version));
    const lines = versions.map((v) => versionLine(v.handle, v.valuesJson)).join('\n');
    if (row.action === 'bulk.chunk') {
      if (sha256(lines) !== row.digest) return 'the record versions this bulk chunk wrote do not match its digest (record_versions was edited)';
      return undefined;
    }
    if (versions.length === 0) return undefined;
    // Seeds written before schema v6 kept no payload: their versions cannot be checked.
    if (row.payload === null) return row.action === 'seed' ? undefined : `this ${row.action} entry wrote record versions its digest does not cover`;
    // Compared line by line: a newline slipped into a version cannot shift it into the rest.
    if (row.payload.split('\n', 2 * versions.length).join('\n') !== lines)
      return `the record versions this ${row.action} entry wrote do not match its payload (record_versions was edited)`;
    return undefined;
  }

  /**
   * Breadth-first walk from `rootKey` (down follows edges from→to, up to→from), one row per
   * (identifier, depth, edge it was reached by), with the identifier's spellings.
   */
  walk(rootKey: string, direction: 'down' | 'up', maxDepth: number, asOf: string, rowLimit: number): WalkRow[] {
    const stmt = direction === 'down' ? this.stmt.walkDown : this.stmt.walkUp;
    return stmt.all({ root: rootKey, depth: maxDepth, asOf, limit: rowLimit }) as WalkRow[];
  }

  /** Edges valid at `asOf` leaving (down) or entering (up) any of `keys`. */
  edgesAt(keys: string[], direction: 'down' | 'up', asOf: string, limit: number): EdgeRow[] {
    const stmt = direction === 'down' ? this.stmt.edgesFrom : this.stmt.edgesTo;
    return stmt.all({ keys: JSON.stringify(keys), asOf, limit }) as EdgeRow[];
  }

  /** Tables an escrow export carries (tokens and the outbox stay with the node). */
  static readonly ESCROW_TABLES = [
    'prefixes',
    'records',
    'record_versions',
    'audit_log',
    'audit_payloads',
    'templates',
    'events',
    'edges',
    'lineage_names',
    'sync_reports',
  ] as const;

  /** Calls `row` for every row of every escrow table, inside one read transaction (a consistent snapshot). */
  snapshot(row: (table: string, values: Record<string, unknown>) => void): void {
    this.db.transaction(() => {
      for (const table of Store.ESCROW_TABLES) for (const r of this.db.prepare(`SELECT * FROM ${table}`).iterate()) row(table, r as Record<string, unknown>);
    })();
  }

  /** Inserts rows verbatim into an escrow table (restore into an empty database). */
  insertRows(table: (typeof Store.ESCROW_TABLES)[number], rows: Array<Record<string, unknown>>): void {
    if (rows.length === 0) return;
    const cols = Object.keys(rows[0]!);
    const stmt = this.db.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
    this.db
      .transaction(() => {
        for (const r of rows) stmt.run(r);
      })
      .immediate();
  }

  auditHead(): { seq: number; hash: string } {
    return (this.stmt.auditHead.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS_HASH };
  }

  allTemplates(): TemplateRow[] {
    return this.stmt.allTemplates.all() as TemplateRow[];
  }

  /** Reports due to be sent (pending, next attempt time reached), oldest first. */
  dueReports(nowMs: number, limit: number): OutboxRow[] {
    return this.stmt.dueReports.all(nowMs, limit) as OutboxRow[];
  }

  outbox(afterId: number, limit: number): OutboxRow[] {
    return this.stmt.outbox.all(afterId, limit) as OutboxRow[];
  }

  pendingReports(): number {
    return this.stmt.pendingCount.get() as number;
  }

  /** Outbox bookkeeping (not an audited change: the report itself was audited when queued). */
  markReport(id: number, state: 'sent' | 'rejected', error: string | null): void {
    this.stmt.reportDone.run(state, isoSeconds(this.now()), error, id);
  }

  retryReport(id: number, nextAttemptAt: number, error: string): void {
    this.stmt.reportRetry.run(nextAttemptAt, error, id);
  }

  reportByKey(reporter: string, idemKey: string): ReportRow | undefined {
    return this.stmt.reportByKey.get(reporter, idemKey) as ReportRow | undefined;
  }

  reports(afterId: number, limit: number): ReportRow[] {
    return this.stmt.reports.all(afterId, limit) as ReportRow[];
  }

  /** Changes when another connection (CLI, another worker) commits. */
  dataVersion(): number {
    return this.stmt.dataVersion.get() as number;
  }

  /** Feed rows after `cursor`, oldest first. */
  changesAfter(cursor: number, limit: number): ChangeRow[] {
    return this.stmt.changesAfter.all(cursor, limit) as ChangeRow[];
  }

  /** The cursor of the newest feed row (0: none yet); pruning always keeps it. */
  changesHead(): number {
    return (this.stmt.changesHead.get() as number | null) ?? 0;
  }

  /** Registers `fn` to run right after each commit on this connection that changed cached state; returns the unsubscribe. */
  onCommit(fn: () => void): () => void {
    this.committed.add(fn);
    return () => void this.committed.delete(fn);
  }

  /**
   * The one write path. `apply` runs inside an IMMEDIATE transaction and returns the
   * result plus the canonical text of what was written (its SHA-256 is the audit digest).
   * Must not await: the transaction is synchronous by design.
   */
  write<T>(entry: WriteEntry, apply: (tx: WriteTx) => WriteOutcome<T>): T {
    let recorded = false;
    const run = this.db.transaction((): T => {
      const at = isoSeconds(this.now());
      const head = this.stmt.auditHead.get() as { seq: number; hash: string } | undefined;
      const seq = (head?.seq ?? 0) + 1;
      const prevHash = head?.hash ?? GENESIS_HASH;
      const stmt = this.stmt;
      const history = this.history;
      const nextVersion = (handleKey: string) =>
        ((history ? (stmt.lastVersion.get(handleKey) as number | null) : (stmt.currentVersion.get(handleKey) as number | undefined)) ?? 0) + 1;
      // The version rows name the action the write ends up with (known once apply returns).
      const versionRows: Array<[string, number, string, string | null]> = [];
      // Recorded here, by the methods that change cached state, so no writer can forget one.
      const changes = new Set<string>();
      const changed = (kind: ChangeKind, key: string) => void changes.add(`${kind} ${key}`);
      const tx: WriteTx = {
        at,
        seq,
        putRecord(row) {
          const version = nextVersion(row.handleKey);
          stmt.upsertRecord.run({ ...row, version, updatedAt: at });
          changed('record', row.handleKey);
          if (history) versionRows.push([row.handleKey, version, row.handle, row.valuesJson]);
          return version;
        },
        deleteRecord(handleKey, handle) {
          const version = nextVersion(handleKey);
          stmt.deleteRecord.run(handleKey);
          changed('record', handleKey);
          if (history) versionRows.push([handleKey, version, handle, null]);
          return version;
        },
        putPrefix(row) {
          stmt.putPrefix.run(row);
          changed('prefix', row.prefixKey);
        },
        deletePrefix(prefixKey) {
          stmt.deletePrefix.run(prefixKey);
          changed('prefix', prefixKey);
        },
        insertToken(row) {
          stmt.insertToken.run(row);
          changed('token', row.id);
        },
        revokeToken(id) {
          stmt.revokeToken.run(at, id);
          changed('token', id);
        },
        insertEvent(row) {
          return Number(stmt.insertEvent.run(row.type, row.action, row.eventTime, at, entry.actor, row.bodyJson, seq).lastInsertRowid);
        },
        openEdge(fromKey, toKey, type, since, eventId) {
          if (stmt.openEdgeExists.get(fromKey, toKey, type) !== undefined) return false;
          stmt.insertEdge.run(fromKey, toKey, type, since, eventId);
          return true;
        },
        closeEdge(fromKey, toKey, type, until, eventId) {
          return stmt.closeEdge.run({ until, eventId, fromKey, toKey, type }).changes > 0;
        },
        openChildren(fromKey, type) {
          return stmt.openChildren.all(fromKey, type) as string[];
        },
        nameIdentifier(key, handle) {
          stmt.nameIdentifier.run(key, handle);
        },
        enqueueReport(kind, idemKey, bodyJson) {
          stmt.enqueue.run(kind, idemKey, bodyJson, at);
        },
        putTemplate(row) {
          stmt.putTemplate.run(row);
          changed('template', `${row.prefixKey}@${row.version}`);
        },
        markTemplateUsed(prefixKey, version) {
          if (stmt.markTemplateUsed.run(prefixKey, version).changes > 0) changed('template', `${prefixKey}@${version}`);
        },
        changed,
        insertReport(row) {
          return Number(stmt.insertReport.run({ ...row, receivedAt: at }).lastInsertRowid);
        },
      };
      const { result, payload, action, keepPayload } = apply(tx);
      if (changes.size > 0) {
        const auditSeq = history && payload !== null ? seq : null;
        let last = 0;
        for (const c of changes) {
          const space = c.indexOf(' ');
          last = Number(stmt.insertChange.run(auditSeq, c.slice(0, space), c.slice(space + 1)).lastInsertRowid);
        }
        // Bounded: a follower further behind than this drops its whole cache instead.
        if (last > this.changesRetention) stmt.pruneChanges.run(last - this.changesRetention);
        recorded = true;
      }
      if (payload === null) return result;
      const finalAction = action ?? entry.action;
      for (const [key, version, handle, values] of versionRows) stmt.insertVersion.run(key, version, handle, at, entry.actor, finalAction, values, seq);
      if (!history) return result;
      const base = { seq, at, actor: entry.actor, action: finalAction, target: entry.target, digest: sha256(payload) };
      stmt.insertAudit.run({ ...base, prevHash, hash: auditHash(prevHash, base) });
      if (keepPayload === true) stmt.insertPayload.run(seq, payload);
      return result;
    });
    const t0 = performance.now();
    let out: T;
    try {
      out = run.immediate();
      this.onWrite?.(performance.now() - t0);
    } catch (err) {
      if (err instanceof IdnError) throw err;
      throw new IdnError('IDN_INTERNAL', 'the write could not be stored', { cause: err });
    }
    // The writer's own caches follow at once: a PUT then a GET here never sees the old answer.
    if (recorded) for (const fn of this.committed) fn();
    return out;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
