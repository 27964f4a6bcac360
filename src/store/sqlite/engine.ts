/**
 * The SQLite engine: the only module that opens better-sqlite3. WAL, statements prepared once,
 * every write through `write()`: one IMMEDIATE transaction (BEGIN … COMMIT around the awaited
 * `apply`, one write at a time) that applies the change and appends the hash-chained audit
 * entry (and, for records, the version row) before it commits. Reads use a second connection.
 */
import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { IdnError } from '../../errors.js';
import { type AuditedTableName, CURRENT_VALUES, isoSeconds, rowHash, sha256, type WriteSetRow } from '../chain.js';
import { verifyChain } from '../verify.js';
import type {
  AuditReads,
  AuditVerifyReads,
  ChangeKind,
  ChangeReads,
  EscrowOps,
  LineageReads,
  OutboxOps,
  PrefixReads,
  RecordReads,
  StoreEngine,
  RecordRow,
  RecordTombstone,
  StoreOptions,
  TemplateReads,
  TokenReads,
  WriteEntry,
  WriteHint,
  WriteOutcome,
  WriteTx,
} from '../types.js';
import { putRow } from '../rows.js';
import { auditReads, auditWrites, rebaseIfNeeded } from './audit.js';
import { changeReads, changeWrites } from './changes.js';
import { type Db, promised } from './db.js';
import { escrowOps } from './escrow.js';
import { lineageReads, lineageWrites } from './lineage.js';
import { latestSchemaVersion, migrate, schemaVersion } from './migrations.js';
import { outboxOps, outboxWrites } from './outbox.js';
import { prefixReads, prefixWrites } from './prefixes.js';
import { recordReads, recordWrites } from './records.js';
import { templateReads, templateWrites } from './templates.js';
import { tokenReads, tokenWrites } from './tokens.js';

/** Key-scan pages this long or longer read on a connection of their own (`recordKeysAfter` in openSqlite). */
const SCAN_PAGE_KEYS = 1000;
/** That connection's page cache: one page of keys is about 100 pages of the index. */
const SCAN_CACHE_BYTES = 1024 * 1024;

const cacheSize = (opts: StoreOptions) => `cache_size = -${Math.floor((opts.cacheBytes ?? 64 * 1024 * 1024) / 1024)}`;

function connect(path: string, opts: StoreOptions): Db {
  const readonly = opts.readonly ?? false;
  if (path !== ':memory:' && !readonly) {
    // Owner-only: the file holds token hashes and non-public values. SQLite gives the -wal and
    // -shm files the mode of the database file, so creating that one 0600 covers all three.
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (!path.startsWith('file:')) closeSync(openSync(path, 'a', 0o600));
  }
  let db: Db;
  try {
    db = new Database(path, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw new IdnError('IDN_INTERNAL', `cannot open database ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!readonly) {
    db.pragma('journal_mode = WAL');
    // FULL: a write acknowledged to a client survives power loss, not only a crash.
    db.pragma('synchronous = FULL');
    // Checkpoint every ~40 MB of WAL rather than 4 MB: bulk chunks rewrite the same index pages.
    db.pragma('wal_autocheckpoint = 10000');
  }
  db.pragma('busy_timeout = 5000');
  // A point lookup on a large file costs read() system calls unless pages are cached or mapped.
  db.pragma(cacheSize(opts));
  // The whole file, past 2 GiB too: `npm ci` builds SQLite with a 256 GiB cap (scripts/sqlite-mmap.mjs).
  db.pragma(`mmap_size = ${opts.mmapBytes ?? 64 * 1024 ** 3}`);
  db.pragma('foreign_keys = ON');
  return db;
}

/**
 * `JSON.stringify(row)` (the text `rowHash` hashes) with column `at` given as its JSON text:
 * a record's values, escaped once for both its record row and its version row.
 */
function rowText(row: readonly unknown[], at: number, atText: string): string {
  let text = '[';
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    text += `${i === 0 ? '' : ','}${i === at ? atText : v === undefined ? 'null' : JSON.stringify(v)}`;
  }
  return `${text}]`;
}

export function openSqlite(path: string, opts: StoreOptions = {}): StoreEngine {
  const now = opts.now ?? (() => new Date());
  const history = opts.history ?? true;
  const wdb = connect(path, opts);
  if (!opts.readonly) migrate(wdb);
  else if (schemaVersion(wdb) < latestSchemaVersion()) {
    const found = schemaVersion(wdb);
    wdb.close();
    throw new IdnError(
      'IDN_INTERNAL',
      `database ${path} has schema v${found}, older than this idnode's v${latestSchemaVersion()}; start a node on it once to migrate`,
    );
  }
  // Reads use their own connection: a write transaction stays open across awaits on `wdb`, and
  // a read on it would see (and a cache would keep) rows that may still roll back. WAL gives the
  // read connection the last committed state.
  const rdb = opts.readonly || path === ':memory:' ? wdb : connect(path, opts);
  /** Called after each commit of this engine that recorded changes. */
  const committed = new Set<() => void | Promise<void>>();
  const w = {
    records: recordWrites(wdb),
    prefixes: prefixWrites(wdb),
    prefixReads: prefixReads(wdb),
    tokens: tokenWrites(wdb),
    templates: templateWrites(wdb),
    audit: auditWrites(wdb),
    lineage: lineageWrites(wdb),
    outbox: outboxWrites(wdb),
    outboxOps: outboxOps(wdb, now),
    changes: changeWrites(wdb, Math.max(1, opts.changesRetention ?? 100_000)),
    escrow: escrowOps(wdb),
  };
  const reads = {
    records: recordReads(rdb),
    tokens: tokenReads(rdb),
  };

  if (!opts.readonly && history) {
    // A re-base reads every audited row through wdb: its page cache would fill with them (64 MiB by
    // default) and keep them for good. A small one while it runs (a check that finds the log
    // covered reads a page or two).
    wdb.pragma(`cache_size = -${SCAN_CACHE_BYTES / 1024}`);
    rebaseIfNeeded(wdb, isoSeconds(now()));
    wdb.pragma(cacheSize(opts));
  }

  /**
   * Whole-index reads (the key filter's fill: the count, then 10,000 keys at a time) run on a
   * connection of their own, closed after each. On rdb their pages (the whole key index, about
   * 40 MB at a million records) would stay in the page cache that cache misses use: filled at
   * start with pages no request asked for, and pushing out the ones misses read.
   */
  function scanning<T>(read: (r: ReturnType<typeof recordReads>) => T): T {
    if (rdb === wdb) return read(reads.records);
    const scan = connect(path, { ...opts, readonly: true, cacheBytes: SCAN_CACHE_BYTES });
    try {
      return read(recordReads(scan));
    } finally {
      scan.close();
    }
  }

  // One write at a time on `wdb`: each waits for the one before it, whatever that one's outcome.
  let tail: Promise<unknown> = Promise.resolve();
  function queued<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  }

  /** What the write transaction knows of a record named by its hint: read once, before apply. */
  interface Loaded {
    row: RecordRow | undefined;
    /** The newest version number kept (0: none). */
    maxVersion: number;
    tombstone: RecordTombstone | undefined;
  }

  /** The hinted records and their newest versions, in two statements instead of three reads per record. */
  function load(keys: readonly string[]): Map<string, Loaded> {
    const out = new Map<string, Loaded>();
    for (const k of keys) out.set(k, { row: undefined, maxVersion: 0, tombstone: undefined });
    for (const r of w.records.load(keys)) out.get(r.handleKey)!.row = r;
    if (history)
      for (const v of w.records.newest(keys)) {
        const l = out.get(v.handleKey)!;
        l.maxVersion = v.version;
        if (v.deleted === 1) l.tombstone = { handle: v.handle, at: v.at, actor: v.actor };
      }
    return out;
  }

  async function writeNow<T>(entry: WriteEntry, apply: (tx: WriteTx) => Promise<WriteOutcome<T>>, hint?: WriteHint): Promise<T> {
    let recorded = false;
    const t0 = performance.now();
    let out: T;
    try {
      wdb.exec('BEGIN IMMEDIATE');
      const at = isoSeconds(now());
      const head = w.audit.head();
      const seq = head.seq + 1;
      // The version rows name the action the write ends up with (known once apply returns).
      // The last field: the values as JSON text escaped once, for the record row's hash and the version row's.
      const versionRows: Array<[string, number, string, string | null, string]> = [];
      // Recorded here, by the methods that change cached state, so no writer can forget one.
      const changes = new Set<string>();
      const changed = (kind: ChangeKind, key: string) => void changes.add(`${kind} ${key}`);
      // The audited rows this write touched: their state at commit is its write set.
      const touched = new Map<string, [AuditedTableName, unknown[]]>();
      /** Write-set rows hashed from what this write stored (not read back); a later touch of the row drops its entry. */
      const known = new Map<string, WriteSetRow>();
      const touch = (table: AuditedTableName, ...key: unknown[]) => {
        const k = `${table}\t${JSON.stringify(key)}`;
        touched.set(k, [table, key]);
        known.delete(k);
      };
      const knownRow = (table: AuditedTableName, key: unknown[], row: readonly unknown[] | null, hash = row === null ? null : rowHash(row)) => {
        const keyJson = JSON.stringify(key);
        const k = `${table}\t${keyJson}`;
        touched.set(k, [table, key]);
        known.set(k, { table, key: keyJson, hash });
      };
      // Records the hint names, as the database has them, and as this write left them (null: deleted).
      const base = hint?.keys !== undefined && hint.keys.length > 0 ? load(hint.keys) : new Map<string, Loaded>();
      const mine = new Map<string, RecordRow | null>();
      const lastVersion = new Map<string, number>();
      /** The key as the database had it before this write; a key the hint did not name is read now. */
      const loaded = (key: string): Loaded => {
        let b = base.get(key);
        if (b === undefined) base.set(key, (b = load([key]).get(key)!));
        return b;
      };
      const current = (key: string): RecordRow | undefined => {
        const m = mine.get(key);
        return m !== undefined ? (m ?? undefined) : loaded(key).row;
      };
      // Past every kept version with history (this write's own included), else past the current one.
      const nextVersion = (key: string): number => (history ? Math.max(loaded(key).maxVersion, lastVersion.get(key) ?? 0) : (current(key)?.version ?? 0)) + 1;
      /** Before the record's first change in this write: its current version row gets the values it stood for. */
      const keepValues = (key: string): void => {
        if (mine.has(key)) return;
        const before = loaded(key).row;
        if (before !== undefined) w.records.fillVersion(before);
      };
      const tx: WriteTx = {
        at,
        seq,
        getRecord: async (handleKey) => current(handleKey),
        async tombstone(handleKey) {
          // The committed state: this write's own version rows are inserted after its apply.
          return history ? loaded(handleKey).tombstone : undefined;
        },
        getPrefix: async (prefixKey) => w.prefixReads.getPrefix(prefixKey),
        reportByKey: async (reporter, idemKey) => w.outboxOps.reportByKey(reporter, idemKey),
        async putRecord(row) {
          const key = row.handleKey;
          const version = nextVersion(key);
          keepValues(key);
          const stored = putRow(row, version, at);
          let id: number;
          // A new record (most of a bulk chunk): a plain insert, no conflict clause or RETURNING to run.
          if (current(key) === undefined) id = w.records.insertId(stored);
          else [id, stored.prefixKey] = w.records.upsertId(stored);
          mine.set(key, stored);
          changed('record', key);
          const valuesText = JSON.stringify(stored.valuesJson);
          // In AUDITED_TABLES column order, as a read would give it.
          const recordRow = [
            key,
            id,
            stored.handle,
            stored.prefixKey,
            stored.valuesJson,
            stored.publicJson,
            version,
            at,
            stored.maxAge,
            stored.expiresAt,
            stored.etag,
          ];
          knownRow('records', [key], recordRow, sha256(rowText(recordRow, 4, valuesText)));
          if (history) {
            versionRows.push([key, version, row.handle, row.valuesJson, valuesText]);
            lastVersion.set(key, version);
          }
          return version;
        },
        async deleteRecord(handleKey, handle) {
          const version = nextVersion(handleKey);
          keepValues(handleKey);
          w.records.remove(handleKey);
          mine.set(handleKey, null);
          changed('record', handleKey);
          knownRow('records', [handleKey], null);
          if (history) {
            versionRows.push([handleKey, version, handle, null, 'null']);
            lastVersion.set(handleKey, version);
          }
          return version;
        },
        async putPrefix(row) {
          w.prefixes.put(row);
          changed('prefix', row.prefixKey);
          touch('prefixes', row.prefixKey);
        },
        async deletePrefix(prefixKey) {
          w.prefixes.remove(prefixKey);
          changed('prefix', prefixKey);
          touch('prefixes', prefixKey);
        },
        async insertToken(row) {
          w.tokens.insert(row);
          changed('token', row.id);
          touch('tokens', row.id);
        },
        async revokeToken(id) {
          w.tokens.revoke(at, id);
          changed('token', id);
          touch('tokens', id);
        },
        async insertEvent(row) {
          const id = w.lineage.insertEvent(row, at, entry.actor, seq);
          touch('events', id);
          return id;
        },
        async openEdge(...a) {
          const id = w.lineage.openEdge(...a);
          if (id > 0) touch('edges', id);
          return id > 0;
        },
        async closeEdge(...a) {
          const id = w.lineage.closeEdge(...a);
          if (id > 0) touch('edges', id);
          return id > 0;
        },
        openChildren: async (...a) => w.lineage.openChildren(...a),
        async nameIdentifier(key, handle) {
          w.lineage.nameIdentifier(key, handle);
          touch('lineage_names', key);
        },
        // Set-based: a statement per kind of row for a whole chunk, the rows hashed from what was stored.
        openChildrenMany: async (pairs) => w.lineage.openChildrenMany(pairs),
        async openEdges(edges) {
          const ids = w.lineage.openEdges(edges);
          ids.forEach((id, i) => {
            if (id === 0) return;
            const [fromKey, toKey, type, since, eventId] = edges[i]!;
            knownRow('edges', [id], [id, fromKey, toKey, type, since, null, eventId, null]);
          });
          return ids.map((id) => id > 0);
        },
        async nameIdentifiers(names) {
          for (const [key, handle] of w.lineage.nameIdentifiers(names)) knownRow('lineage_names', [key], [key, handle]);
        },
        enqueueReport: async (kind, idemKey, bodyJson) => w.outbox.enqueue(kind, idemKey, bodyJson, at),
        async putTemplate(row) {
          w.templates.put(row);
          changed('template', `${row.prefixKey}@${row.version}`);
          touch('templates', row.prefixKey, row.version);
        },
        async markTemplateUsed(prefixKey, version) {
          if (w.templates.markUsed(prefixKey, version)) {
            changed('template', `${prefixKey}@${version}`);
            touch('templates', prefixKey, version);
          }
        },
        changed,
        async insertReport(row) {
          const id = w.outbox.insertReport({ ...row, receivedAt: at });
          touch('sync_reports', id);
          return id;
        },
      };
      const { result, payload, action, keepPayload } = await apply(tx);
      if (changes.size > 0) {
        w.changes.record(history && payload !== null ? seq : null, changes);
        recorded = true;
      }
      if (payload !== null) {
        const finalAction = action ?? entry.action;
        // A version row is inserted exactly as given (a second one would fail its primary key):
        // its write-set line is computed here, without reading it back.
        const versionLines: WriteSetRow[] = [];
        for (const [key, version, handle, values, valuesText] of versionRows) {
          // The record's current version: its values are the record row's (stored once); hashed as if stored twice.
          const stored = values !== null && mine.get(key)?.version === version ? CURRENT_VALUES : values;
          w.records.insertVersion(key, version, handle, at, entry.actor, finalAction, stored, seq);
          versionLines.push({
            table: 'record_versions',
            key: JSON.stringify([key, version]),
            hash: sha256(rowText([key, version, handle, at, entry.actor, finalAction, values, seq], 6, valuesText)),
          });
        }
        if (history) {
          const base = { seq, at, actor: entry.actor, action: finalAction, target: entry.target, digest: sha256(payload) };
          const rows = [...touched].map(([k, [table, key]]) => known.get(k) ?? w.audit.rowNow(table, key)).concat(versionLines);
          w.audit.append(head.hash, base, keepPayload === true ? payload : undefined, rows);
        }
      }
      wdb.exec('COMMIT');
      out = result;
      opts.onWrite?.(performance.now() - t0);
    } catch (err) {
      if (wdb.inTransaction) wdb.exec('ROLLBACK');
      if (err instanceof IdnError) throw err;
      throw new IdnError('IDN_INTERNAL', 'the write could not be stored', { cause: err });
    }
    // The writer's own caches follow before the write returns: a PUT then a GET here never sees the old answer.
    if (recorded) for (const fn of committed) await fn();
    return out;
  }

  const outbox = promised<OutboxOps>(outboxOps(rdb, now));
  const verifyReads = promised<Omit<AuditReads, 'verifyAudit'> & AuditVerifyReads>(auditReads(rdb));
  const escrowReads = promised<EscrowOps>(escrowOps(rdb));
  return {
    ...promised<RecordReads>(reads.records),
    // A short page (seeding's check) stays on rdb.
    recordKeysAfter: async (afterKey, limit) =>
      limit < SCAN_PAGE_KEYS ? reads.records.recordKeysAfter(afterKey, limit) : scanning((r) => r.recordKeysAfter(afterKey, limit)),
    totalRecords: async () => scanning((r) => r.totalRecords()),
    ...promised<PrefixReads>(prefixReads(rdb)),
    ...promised<TokenReads>(reads.tokens),
    ...promised<TemplateReads>(templateReads(rdb)),
    ...verifyReads,
    verifyAudit: (o) => verifyChain(verifyReads, o),
    ...promised<LineageReads>(lineageReads(rdb)),
    ...outbox,
    // Outbox bookkeeping writes on the write connection, between writes.
    claimReports: (...a) => queued(() => w.outboxOps.claimReports(...a)),
    markReport: (...a) => queued(() => w.outboxOps.markReport(...a)),
    retryReport: (...a) => queued(() => w.outboxOps.retryReport(...a)),
    ...promised<ChangeReads>(changeReads(rdb)),
    snapshot: (row) => escrowReads.snapshot(row),
    insertRows: (...a) => queued(() => w.escrow.insertRows(...a)),
    path,
    history,
    schemaVersion: schemaVersion(wdb),
    answerRowSync: reads.records.answerRow,
    tokenByHashSync: reads.tokens.tokenByHash,
    isOpen: () => wdb.open,
    onCommit(fn) {
      committed.add(fn);
      return () => void committed.delete(fn);
    },
    write: (entry, apply, hint) => queued(() => writeNow(entry, apply, hint)),
    async close() {
      await tail;
      if (rdb !== wdb && rdb.open) rdb.close();
      if (wdb.open) wdb.close();
    },
  };
}
