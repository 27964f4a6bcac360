/**
 * The SQLite engine: the only module that opens better-sqlite3. WAL, statements prepared once,
 * every write through `write()`: one IMMEDIATE transaction that applies the change and appends
 * the hash-chained audit entry (and, for records, the version row) before it commits.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { IdnError } from '../../errors.js';
import { isoSeconds, sha256 } from '../chain.js';
import type { ChangeKind, StoreEngine, StoreOptions, WriteEntry, WriteOutcome, WriteTx } from '../types.js';
import { auditReads, auditWrites } from './audit.js';
import { changeReads, changeWrites } from './changes.js';
import type { Db } from './db.js';
import { escrowOps } from './escrow.js';
import { lineageReads, lineageWrites } from './lineage.js';
import { latestSchemaVersion, migrate, schemaVersion } from './migrations.js';
import { outboxOps, outboxWrites } from './outbox.js';
import { prefixReads, prefixWrites } from './prefixes.js';
import { recordReads, recordWrites } from './records.js';
import { templateReads, templateWrites } from './templates.js';
import { tokenReads, tokenWrites } from './tokens.js';

function connect(path: string, opts: StoreOptions): Db {
  const readonly = opts.readonly ?? false;
  if (path !== ':memory:' && !readonly) mkdirSync(dirname(path), { recursive: true });
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
  db.pragma(`cache_size = -${Math.floor((opts.cacheBytes ?? 64 * 1024 * 1024) / 1024)}`);
  db.pragma(`mmap_size = ${opts.mmapBytes ?? 2 * 1024 ** 3}`);
  db.pragma('foreign_keys = ON');
  return db;
}

export function openSqlite(path: string, opts: StoreOptions = {}): StoreEngine {
  const now = opts.now ?? (() => new Date());
  const history = opts.history ?? true;
  const db = connect(path, opts);
  if (!opts.readonly) migrate(db);
  else if (schemaVersion(db) < latestSchemaVersion()) {
    const found = schemaVersion(db);
    db.close();
    throw new IdnError(
      'IDN_INTERNAL',
      `database ${path} has schema v${found}, older than this idnode's v${latestSchemaVersion()}; start a node on it once to migrate`,
    );
  }
  /** Called synchronously after each commit of this engine that recorded changes. */
  const committed = new Set<() => void>();
  const w = {
    records: recordWrites(db),
    prefixes: prefixWrites(db),
    tokens: tokenWrites(db),
    templates: templateWrites(db),
    audit: auditWrites(db),
    lineage: lineageWrites(db),
    outbox: outboxWrites(db),
    changes: changeWrites(db, Math.max(1, opts.changesRetention ?? 100_000)),
  };

  function write<T>(entry: WriteEntry, apply: (tx: WriteTx) => WriteOutcome<T>): T {
    let recorded = false;
    const run = db.transaction((): T => {
      const at = isoSeconds(now());
      const head = w.audit.head();
      const seq = head.seq + 1;
      // The version rows name the action the write ends up with (known once apply returns).
      const versionRows: Array<[string, number, string, string | null]> = [];
      // Recorded here, by the methods that change cached state, so no writer can forget one.
      const changes = new Set<string>();
      const changed = (kind: ChangeKind, key: string) => void changes.add(`${kind} ${key}`);
      const tx: WriteTx = {
        at,
        seq,
        putRecord(row) {
          const version = w.records.nextVersion(row.handleKey, history);
          w.records.upsert({ ...row, version, updatedAt: at });
          changed('record', row.handleKey);
          if (history) versionRows.push([row.handleKey, version, row.handle, row.valuesJson]);
          return version;
        },
        deleteRecord(handleKey, handle) {
          const version = w.records.nextVersion(handleKey, history);
          w.records.remove(handleKey);
          changed('record', handleKey);
          if (history) versionRows.push([handleKey, version, handle, null]);
          return version;
        },
        putPrefix(row) {
          w.prefixes.put(row);
          changed('prefix', row.prefixKey);
        },
        deletePrefix(prefixKey) {
          w.prefixes.remove(prefixKey);
          changed('prefix', prefixKey);
        },
        insertToken(row) {
          w.tokens.insert(row);
          changed('token', row.id);
        },
        revokeToken(id) {
          w.tokens.revoke(at, id);
          changed('token', id);
        },
        insertEvent: (row) => w.lineage.insertEvent(row, at, entry.actor, seq),
        openEdge: w.lineage.openEdge,
        closeEdge: w.lineage.closeEdge,
        openChildren: w.lineage.openChildren,
        nameIdentifier: w.lineage.nameIdentifier,
        enqueueReport: (kind, idemKey, bodyJson) => w.outbox.enqueue(kind, idemKey, bodyJson, at),
        putTemplate(row) {
          w.templates.put(row);
          changed('template', `${row.prefixKey}@${row.version}`);
        },
        markTemplateUsed(prefixKey, version) {
          if (w.templates.markUsed(prefixKey, version)) changed('template', `${prefixKey}@${version}`);
        },
        changed,
        insertReport: (row) => w.outbox.insertReport({ ...row, receivedAt: at }),
      };
      const { result, payload, action, keepPayload } = apply(tx);
      if (changes.size > 0) {
        w.changes.record(history && payload !== null ? seq : null, changes);
        recorded = true;
      }
      if (payload === null) return result;
      const finalAction = action ?? entry.action;
      for (const [key, version, handle, values] of versionRows) w.records.insertVersion(key, version, handle, at, entry.actor, finalAction, values, seq);
      if (!history) return result;
      const base = { seq, at, actor: entry.actor, action: finalAction, target: entry.target, digest: sha256(payload) };
      w.audit.append(head.hash, base, keepPayload === true ? payload : undefined);
      return result;
    });
    const t0 = performance.now();
    let out: T;
    try {
      out = run.immediate();
      opts.onWrite?.(performance.now() - t0);
    } catch (err) {
      if (err instanceof IdnError) throw err;
      throw new IdnError('IDN_INTERNAL', 'the write could not be stored', { cause: err });
    }
    // The writer's own caches follow at once: a PUT then a GET here never sees the old answer.
    if (recorded) for (const fn of committed) fn();
    return out;
  }

  return {
    ...recordReads(db),
    ...prefixReads(db),
    ...tokenReads(db),
    ...templateReads(db),
    ...auditReads(db),
    ...lineageReads(db),
    ...outboxOps(db, now),
    ...changeReads(db),
    ...escrowOps(db),
    path,
    history,
    schemaVersion: schemaVersion(db),
    isOpen: () => db.open,
    onCommit(fn) {
      committed.add(fn);
      return () => void committed.delete(fn);
    },
    write,
    close() {
      if (db.open) db.close();
    },
  };
}
