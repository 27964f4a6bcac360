/**
 * The PostgreSQL engine. Every write goes through `write()`: concurrent writes of this process
 * are batched into one transaction (group commit: the chain head's row lock is held through the
 * commit's fsync, so one fsync for up to 64 writes is where the throughput comes from). Each
 * write runs under its own SAVEPOINT, so a failing `apply` rejects only its own promise, and
 * keeps its own audit entry, seq and result. The chain head row is taken FOR UPDATE first, which
 * keeps seq gapless with writers in many processes. Reads use a small pipelined pool; cache-miss
 * reads, history, lineage and listing may go to a hot standby (`readUrl`).
 */
import { performance } from 'node:perf_hooks';
import { IdnError } from '../../errors.js';
import { type AuditedTableName, CURRENT_VALUES, isoSeconds, rowHash, sha256, type WriteSetRow } from '../chain.js';
import { verifyChain } from '../verify.js';
import type { AuditRow, ChangeKind, ChangeReads, RecordTombstone, StoreEngine, StoreOptions, WriteEntry, WriteHint, WriteOutcome, WriteTx } from '../types.js';
import { putRow } from '../rows.js';
import { auditEntry, auditReads, insertAudit, rebaseIfNeeded, rowsNow } from './audit.js';
import { type ChangeInsert, changeReads, CHANGES_CHANNEL, insertChanges, pruneChanges, watchChanges } from './changes.js';
import { beginWithin, connectPool, guardAll, guarded, type Sql, translate, type Tx } from './db.js';
import { escrowOps } from './escrow.js';
import { createFreshness } from './freshness.js';
import { lineageReads, lineageWrites } from './lineage.js';
import { latestPgSchemaVersion, migratePg, pgSchemaVersion, rowsVersion } from './migrations.js';
import { outboxOps, outboxWrites } from './outbox.js';
import { prefixReads, prefixWrites } from './prefixes.js';
import { COPY_MIN_ROWS, type LoadedRecord, recordReads, recordWrites, type StoredRecord, storedArray, type VersionInsert } from './records.js';
import { templateReads, templateWrites } from './templates.js';
import { tokenReads, tokenWrites } from './tokens.js';

export interface PgStoreOptions extends StoreOptions {
  /** postgres://… of the primary (writes, the change feed, counts, tokens). */
  url: string;
  /** postgres://… of a hot standby for cache-miss reads, history, lineage and listing (default: the primary). */
  readUrl?: string;
  /** Connections per pool (default 4: a few pipelined connections beat many, SCALE.md). */
  poolSize?: number;
  /** Writes batched into one transaction at most (default 64; 1 turns group commit off). */
  batchMax?: number;
  /** Called with the number of writes each committed transaction carried (metrics, tests). */
  onBatch?: (writes: number) => void;
  /** The longest a query or write transaction may wait before IDN_UNAVAILABLE (ms; default 5000; 0: none). */
  statementTimeoutMs?: number;
  /** The longest a new connection may take (ms; default 5000). */
  connectTimeoutMs?: number;
}

interface Pending {
  entry: WriteEntry;
  apply: (tx: WriteTx) => Promise<WriteOutcome<unknown>>;
  hint: WriteHint | undefined;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** The chain head as a batch advances it. */
interface Head {
  seq: number;
  hash: string;
  changeId: number;
  /** The highest records.id (chain_head.record_id): max(id) over every partition costs a millisecond. */
  recordId: number;
}

/**
 * A write's savepoint, opened only before the write's first statement: a write that touches
 * only records runs none (they are in memory; a failure drops its layer). SAVEPOINT and RELEASE
 * are not awaited: they are pipelined with the write's own statements on the transaction's
 * connection. A failure rolls back to the savepoint, so the transaction goes on without this write.
 */
function lazySavepoint(tx: Tx, alone: boolean) {
  let opened: Promise<unknown> | undefined;
  return {
    /** Call before each statement of the write. */
    open(): void {
      if (alone || opened !== undefined) return;
      opened = tx.unsafe('SAVEPOINT w').execute();
      opened.catch(() => undefined);
    },
    async release(released: Array<Promise<unknown>>): Promise<void> {
      if (opened === undefined) return;
      await opened;
      const release = tx.unsafe('RELEASE SAVEPOINT w').execute();
      release.catch(() => undefined);
      released.push(release);
    },
    async rollback(): Promise<void> {
      if (opened === undefined) return;
      await tx.unsafe('ROLLBACK TO SAVEPOINT w');
      await tx.unsafe('RELEASE SAVEPOINT w');
    },
  };
}

/** Rows a write defers to the end of its batch (inserted set-based), and what it assigned. */
interface Deferred {
  /** Records as this write (or the batch) left them (null: deleted): written once, at the batch's end. */
  records: Map<string, StoredRecord | null>;
  /** The newest version given to a key: its tombstone when a deletion, else null. */
  latest: Map<string, RecordTombstone | null>;
  versions: VersionInsert[];
  audit: Array<AuditRow & { writeSet: string }>;
  payloads: Array<[number, string]>;
  changes: ChangeInsert[];
  /** Net change of each prefix's record counter. */
  counts: Map<string, number>;
  /** The last version given to each key (its row is not inserted yet). */
  lastVersion: Map<string, number>;
}

const deferred = (): Deferred => ({
  records: new Map(),
  latest: new Map(),
  versions: [],
  audit: [],
  payloads: [],
  changes: [],
  counts: new Map(),
  lastVersion: new Map(),
});

/** Adds a write that succeeded to its batch's rows. */
function merge(into: Deferred, from: Deferred): void {
  for (const [k, r] of from.records) into.records.set(k, r);
  for (const [k, t] of from.latest) into.latest.set(k, t);
  into.versions.push(...from.versions);
  into.audit.push(...from.audit);
  into.payloads.push(...from.payloads);
  into.changes.push(...from.changes);
  for (const [k, n] of from.counts) into.counts.set(k, (into.counts.get(k) ?? 0) + n);
  for (const [k, v] of from.lastVersion) into.lastVersion.set(k, v);
}

/** The URL without its password, for messages and `path`. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

export async function openPostgres(opts: PgStoreOptions): Promise<StoreEngine> {
  const now = opts.now ?? (() => new Date());
  const history = opts.history ?? true;
  const retention = Math.max(1, opts.changesRetention ?? 100_000);
  const batchMax = Math.max(1, opts.batchMax ?? 64);
  const where = redact(opts.url);
  const limits = { statementTimeoutMs: opts.statementTimeoutMs ?? 5000, connectTimeoutMs: opts.connectTimeoutMs ?? 5000 };
  const sql: Sql = connectPool(opts.url, opts.poolSize ?? 4, limits);
  const replica: Sql = opts.readUrl !== undefined ? connectPool(opts.readUrl, opts.poolSize ?? 4, limits, sql) : sql;
  const freshness = opts.readUrl !== undefined ? createFreshness() : undefined;
  let version: number;
  try {
    version = opts.readonly ? await pgSchemaVersion(sql) : await migratePg(sql, opts);
  } catch (err) {
    await Promise.all([sql.end({ timeout: 1 }), replica !== sql ? replica.end({ timeout: 1 }) : undefined]);
    throw new IdnError('IDN_INTERNAL', `cannot open database ${where}: ${(err as Error).message}`, { cause: err });
  }
  if (version < latestPgSchemaVersion()) {
    await Promise.all([sql.end({ timeout: 1 }), replica !== sql ? replica.end({ timeout: 1 }) : undefined]);
    throw new IdnError(
      'IDN_INTERNAL',
      `database ${where} has PostgreSQL schema v${version}, older than this idnode's v${latestPgSchemaVersion()}; start a node on it once to migrate`,
    );
  }

  if (!opts.readonly && history)
    try {
      await rebaseIfNeeded(sql, isoSeconds(now()));
    } catch (err) {
      await Promise.all([sql.end({ timeout: 1 }), replica !== sql ? replica.end({ timeout: 1 }) : undefined]);
      throw new IdnError('IDN_INTERNAL', `cannot re-base the audit log of ${where}: ${(err as Error).message}`, { cause: err });
    }

  const committed = new Set<() => void | Promise<void>>();
  let open = true;

  /**
   * One write inside the batch's transaction, after `head`; what it defers goes to its own
   * layer, merged into `batch` by the caller once it succeeded. Records are read from and
   * written to memory (`base`: the database under the lock; `batch`: the writes before it).
   */
  async function runOne(
    q: Tx,
    p: Pending,
    head: Head,
    batch: Deferred,
    base: Map<string, LoadedRecord>,
    sp: ReturnType<typeof lazySavepoint>,
  ): Promise<{ result: unknown; head: Head; rows: Deferred }> {
    const at = isoSeconds(now());
    const seq = head.seq + 1;
    const mine = deferred();
    const versionRows: Array<[string, number, string, string | null]> = [];
    const changes = new Set<string>();
    const changed = (kind: ChangeKind, key: string) => void changes.add(`${kind} ${key}`);
    /** The last version this batch gave `key` but has not inserted yet (0: none). */
    const pending = (key: string) => mine.lastVersion.get(key) ?? batch.lastVersion.get(key) ?? 0;
    const countFor = (prefixKey: string, delta: number) => mine.counts.set(prefixKey, (mine.counts.get(prefixKey) ?? 0) + delta);
    /** Every statement of this write runs under its savepoint (opened on the first). */
    const stmt = <T>(fn: () => Promise<T>): Promise<T> => {
      sp.open();
      return fn();
    };
    // The audited rows this write touched: their state once its apply is done is its write set.
    const touched = new Map<AuditedTableName, Map<string, readonly unknown[]>>();
    const touch = (table: AuditedTableName, ...key: unknown[]) => {
      let keys = touched.get(table);
      if (keys === undefined) touched.set(table, (keys = new Map<string, readonly unknown[]>()));
      keys.set(JSON.stringify(key), key);
    };
    /** Records rows this write changed, as it left them (null: deleted): hashed from memory, not read back. */
    const known = new Map<string, unknown[] | null>();
    let recordId = head.recordId;
    /** The key as the database has it; a key the hint did not name is read now (and kept for the batch). */
    const loaded = async (key: string): Promise<LoadedRecord> => {
      let l = base.get(key);
      if (l === undefined) {
        l = (await stmt(() => recordWrites.load(q, [key], history))).get(key)!;
        base.set(key, l);
      }
      return l;
    };
    const current = async (key: string): Promise<StoredRecord | null> => {
      if (mine.records.has(key)) return mine.records.get(key)!;
      if (batch.records.has(key)) return batch.records.get(key)!;
      return (await loaded(key)).row;
    };
    const nextVersion = async (key: string, row: StoredRecord | null) =>
      history ? Math.max((await loaded(key)).maxVersion, pending(key)) + 1 : (row?.version ?? 0) + 1;
    const tx: WriteTx = {
      at,
      seq,
      async getRecord(handleKey) {
        const r = await current(handleKey);
        if (r === null) return undefined;
        const { id: _id, ...row } = r;
        return row;
      },
      async tombstone(handleKey) {
        if (!history) return undefined;
        // Earlier writes' versions only: on SQLite a write's own version rows are inserted after its apply.
        if (batch.latest.has(handleKey)) return batch.latest.get(handleKey) ?? undefined;
        return (await loaded(handleKey)).tombstone;
      },
      getPrefix: (prefixKey) => stmt(() => prefixReads(q).getPrefix(prefixKey)),
      reportByKey: (reporter, idemKey) => stmt(() => outboxWrites.reportByKey(q, reporter, idemKey)),
      async putRecord(row) {
        const key = row.handleKey;
        const before = await current(key);
        const version = await nextVersion(key, before);
        if (before === null) countFor(row.prefixKey, 1);
        // An update keeps the row's prefix and rowid, as SQLite's upsert does.
        const stored: StoredRecord = { ...putRow(row, version, at), prefixKey: before?.prefixKey ?? row.prefixKey, id: before?.id ?? ++recordId };
        mine.records.set(key, stored);
        changed('record', key);
        known.set(JSON.stringify([key]), storedArray(stored));
        if (history) {
          versionRows.push([key, version, row.handle, row.valuesJson]);
          mine.lastVersion.set(key, version);
          mine.latest.set(key, null);
        }
        return version;
      },
      async deleteRecord(handleKey, handle) {
        const before = await current(handleKey);
        const version = await nextVersion(handleKey, before);
        mine.records.set(handleKey, null);
        if (before !== null) {
          countFor(before.prefixKey, -1);
          // SQLite gives the next row max(rowid) + 1: removing the highest id lowers it (rare: read it then).
          if (before.id >= recordId) {
            const inMemory = new Map([...batch.records, ...mine.records]);
            recordId = await stmt(() => recordWrites.maxIdExcept(q, [...inMemory.keys()]));
            for (const r of inMemory.values()) if (r !== null && r.id > recordId) recordId = r.id;
          }
        }
        changed('record', handleKey);
        known.set(JSON.stringify([handleKey]), null);
        if (history) {
          versionRows.push([handleKey, version, handle, null]);
          mine.lastVersion.set(handleKey, version);
          mine.latest.set(handleKey, { handle, at, actor: p.entry.actor });
        }
        return version;
      },
      async putPrefix(row) {
        await stmt(() => prefixWrites.put(q, row));
        changed('prefix', row.prefixKey);
        touch('prefixes', row.prefixKey);
      },
      async deletePrefix(prefixKey) {
        await stmt(() => prefixWrites.remove(q, prefixKey));
        changed('prefix', prefixKey);
        touch('prefixes', prefixKey);
      },
      async insertToken(row) {
        await stmt(() => tokenWrites.insert(q, row));
        changed('token', row.id);
        touch('tokens', row.id);
      },
      async revokeToken(id) {
        await stmt(() => tokenWrites.revoke(q, at, id));
        changed('token', id);
        touch('tokens', id);
      },
      async insertEvent(row) {
        const id = await stmt(() => lineageWrites.insertEvent(q, row, at, p.entry.actor, seq));
        touch('events', id);
        return id;
      },
      async openEdge(...a) {
        const id = await stmt(() => lineageWrites.openEdge(q, ...a));
        if (id > 0) touch('edges', id);
        return id > 0;
      },
      async closeEdge(...a) {
        const id = await stmt(() => lineageWrites.closeEdge(q, ...a));
        if (id > 0) touch('edges', id);
        return id > 0;
      },
      openChildren: (...a) => stmt(() => lineageWrites.openChildren(q, ...a)),
      async nameIdentifier(key, handle) {
        await stmt(() => lineageWrites.nameIdentifier(q, key, handle));
        touch('lineage_names', key);
      },
      openChildrenMany: (pairs) => stmt(() => lineageWrites.openChildrenMany(q, pairs)),
      async openEdges(edges) {
        const ids = await stmt(() => lineageWrites.openEdges(q, edges));
        for (const id of ids) if (id > 0) touch('edges', id);
        return ids.map((id) => id > 0);
      },
      async nameIdentifiers(names) {
        await stmt(() => lineageWrites.nameIdentifiers(q, names));
        for (const [key] of names) touch('lineage_names', key);
      },
      enqueueReport: (kind, idemKey, bodyJson) => stmt(() => outboxWrites.enqueue(q, kind, idemKey, bodyJson, at)),
      async putTemplate(row) {
        await stmt(() => templateWrites.put(q, row));
        changed('template', `${row.prefixKey}@${row.version}`);
        touch('templates', row.prefixKey, row.version);
      },
      async markTemplateUsed(prefixKey, version) {
        if (await stmt(() => templateWrites.markUsed(q, prefixKey, version))) {
          changed('template', `${prefixKey}@${version}`);
          touch('templates', prefixKey, version);
        }
      },
      changed,
      async insertReport(row) {
        const id = await stmt(() => outboxWrites.insertReport(q, { ...row, receivedAt: at }));
        touch('sync_reports', id);
        return id;
      },
    };
    const { result, payload, action, keepPayload } = await p.apply(tx);
    const next = { ...head, recordId };
    const auditSeq = history && payload !== null ? seq : null;
    for (const c of changes) {
      const space = c.indexOf(' ');
      mine.changes.push([++next.changeId, auditSeq, c.slice(0, space), c.slice(space + 1)]);
    }
    if (payload !== null) {
      const finalAction = action ?? p.entry.action;
      // Version rows are inserted with the batch, exactly as given: their write-set lines are computed here.
      const versionLines: WriteSetRow[] = [];
      for (const [key, version, handle, values] of versionRows) {
        const row: VersionInsert = [key, version, handle, at, p.entry.actor, finalAction, values, seq];
        mine.versions.push(row);
        versionLines.push({ table: 'record_versions', key: JSON.stringify([key, version]), hash: rowHash(row) });
      }
      if (history) {
        // Read now, inside this write's savepoint: a later write of the batch touching the same row hashes its own state.
        const rows = touched.size === 0 ? [] : await stmt(() => rowsNow(q, new Map([...touched].map(([table, keys]) => [table, [...keys.values()]]))));
        for (const [key, row] of known) rows.push({ table: 'records', key, hash: row === null ? null : rowHash(row) });
        const base = { seq, at, actor: p.entry.actor, action: finalAction, target: p.entry.target, digest: sha256(payload) };
        const e = auditEntry(head.hash, base, keepPayload === true ? payload : undefined, rows.concat(versionLines));
        next.hash = e.hash;
        next.seq = seq;
        mine.audit.push(e);
        if (keepPayload === true) mine.payloads.push([seq, payload]);
      }
    } else {
      // Nothing audited: no version rows, so no pending versions either.
      mine.lastVersion.clear();
      mine.latest.clear();
    }
    return { result, head: next, rows: mine };
  }

  const asWriteError = (err: unknown) => translate(err, 'the write could not be stored');

  /** One transaction for the batch: every write that succeeded commits together. */
  async function runBatch(batch: Pending[]): Promise<void> {
    const t0 = performance.now();
    const done: Array<[Pending, unknown]> = [];
    const failed = new Map<Pending, unknown>();
    let recorded = false;
    let committedChanges: ChangeInsert[] = [];
    try {
      await beginWithin(sql, async (tx) => {
        const keys = new Set<string>();
        for (const p of batch) for (const k of p.hint?.keys ?? []) keys.add(k);
        // Pipelined behind the lock, so the load sees every commit before it: both are sent in the
        // order execute() is called (awaiting a query would send it a microtask later, after the load).
        const lock = tx<Array<{ seq: number; hash: string; changeId: number; recordId: number }>>`
          SELECT seq, hash, change_id AS "changeId", record_id AS "recordId" FROM chain_head WHERE id = 1 FOR UPDATE`.execute();
        const [[row], base] = await Promise.all([lock, recordWrites.load(tx, [...keys], history)]);
        const start: Head = row!;
        let head = start;
        const rows = deferred();
        const released: Array<Promise<unknown>> = [];
        for (const p of batch) {
          // Alone in its transaction: no savepoint; a failure rolls it all back.
          const sp = lazySavepoint(tx, batch.length === 1);
          try {
            const out = await runOne(tx, p, head, rows, base, sp);
            await sp.release(released);
            head = out.head;
            merge(rows, out.rows);
            done.push([p, out.result]);
          } catch (err) {
            if (batch.length === 1) throw err;
            await sp.rollback();
            failed.set(p, err);
          }
        }
        const finalRows: StoredRecord[] = [];
        const deleted: string[] = [];
        for (const [key, r] of rows.records) {
          if (r !== null) finalRows.push(r);
          else if ((base.get(key)?.row ?? null) !== null) deleted.push(key);
        }
        // Values stored once: a key's current version row holds the marker, and the rows of the versions
        // the batch replaced get their values back (hashed all along as if stored twice).
        const replaced: StoredRecord[] = [];
        for (const key of rows.records.keys()) {
          const before = base.get(key)?.row;
          if (before !== null && before !== undefined) replaced.push(before);
        }
        for (const v of rows.versions) if (v[6] !== null && rows.records.get(v[0])?.version === v[1]) v[6] = CURRENT_VALUES;
        // A big batch (a bulk chunk) COPYs its records and versions first: a COPY must run alone on the connection.
        const copy = finalRows.length + rows.versions.length >= COPY_MIN_ROWS;
        if (copy) {
          await Promise.all(released);
          await recordWrites.flush(tx, finalRows, deleted, true);
          await recordWrites.insertVersions(tx, rows.versions, true);
        }
        // What every write appends (versions, entries, feed rows, counters), set-based and pipelined.
        const last: Array<Promise<unknown>> = [
          ...released,
          ...(copy ? [] : [recordWrites.flush(tx, finalRows, deleted, false), recordWrites.insertVersions(tx, rows.versions, false)]),
          recordWrites.fillVersions(tx, replaced),
          insertAudit(tx, rows.audit, rows.payloads),
          insertChanges(tx, rows.changes),
          recordWrites.count(tx, rows.counts),
        ];
        if (head.changeId !== start.changeId) {
          last.push(pruneChanges(tx, head.changeId, retention));
          // Delivered at commit, only if it commits: other nodes read the feed up to this id.
          last.push(tx`SELECT pg_notify(${CHANGES_CHANNEL}, ${String(head.changeId)})`.execute());
          recorded = true;
        }
        if (head !== start)
          last.push(
            tx`UPDATE chain_head SET seq = ${head.seq}, hash = ${head.hash}, change_id = ${head.changeId}, record_id = ${head.recordId} WHERE id = 1`.execute(),
          );
        // COMMIT pipelined behind the batch's last statements (each sent by execute(), in order): the
        // chain head's lock is released one round trip sooner. A failed statement before it aborts
        // the transaction, and COMMIT then only rolls back. postgres.js's own COMMIT after this
        // callback finds no transaction (a warning, ignored).
        last.push(tx.unsafe('COMMIT').execute());
        await Promise.all(last);
        committedChanges = rows.changes;
      });
    } catch (err) {
      // The transaction itself failed (a single write's apply, the commit, the connection):
      // nothing in it was stored.
      for (const p of batch) p.reject(asWriteError(failed.get(p) ?? err));
      return;
    }
    for (const [p, err] of failed) p.reject(asWriteError(err));
    // This node's own writes: its next read of them must not come from a standby that lags.
    if (freshness !== undefined) for (const [id, , kind, key] of committedChanges) if (kind === 'record') freshness.note(key, id);
    opts.onBatch?.(done.length);
    const ms = performance.now() - t0;
    for (let i = 0; i < done.length; i++) opts.onWrite?.(ms);
    // The writer's own caches follow before the writes return (as on SQLite).
    let listenerError: unknown;
    if (recorded)
      for (const fn of committed)
        try {
          await fn();
        } catch (err) {
          listenerError ??= err;
        }
    for (const [p, result] of done) {
      if (listenerError !== undefined) p.reject(listenerError);
      else p.resolve(result);
    }
  }

  const queue: Pending[] = [];
  let running: Promise<void> | undefined;
  function kick(): void {
    if (running !== undefined) return;
    running = (async () => {
      // Writes submitted in the same tick join the first batch.
      await Promise.resolve();
      while (queue.length > 0) await runBatch(queue.splice(0, batchMax));
    })().finally(() => {
      running = undefined;
      if (queue.length > 0) kick();
    });
  }

  const records = guardAll(recordReads(sql, replica, freshness));
  const changes = changeReads(sql);
  const changeOps: ChangeReads = guardAll({
    dataVersion: () => changes.dataVersion(),
    changesHead: () => changes.changesHead(),
    async changesAfter(cursor: number, limit: number) {
      const rows = await changes.changesAfter(cursor, limit);
      // What other nodes changed: a standby read of these keys must have replayed the change.
      if (freshness !== undefined) for (const r of rows) if (r.kind === 'record') freshness.note(r.key, r.id);
      return rows;
    },
  });
  const outbox = guardAll(outboxOps(sql, now));
  const escrow = guardAll(escrowOps(sql));
  const verifyReads = guardAll(auditReads(sql));
  return {
    ...records,
    ...guardAll(prefixReads(sql)),
    ...guardAll(tokenReads(sql)),
    ...guardAll(templateReads(sql)),
    ...verifyReads,
    verifyAudit: (o) => verifyChain(verifyReads, o),
    ...guardAll(lineageReads(replica)),
    ...outbox,
    ...changeOps,
    watchChanges: (wake) => guarded('LISTEN on the change feed', () => watchChanges(sql, wake)),
    ...escrow,
    path: where,
    history,
    // The SQLite schema version with the same tables (escrow compares it); idnode_schema has PostgreSQL's own.
    schemaVersion: rowsVersion(version),
    isOpen: () => open,
    onCommit(fn) {
      committed.add(fn);
      return () => void committed.delete(fn);
    },
    write<T>(entry: WriteEntry, apply: (tx: WriteTx) => Promise<WriteOutcome<T>>, hint?: WriteHint): Promise<T> {
      if (!open) return Promise.reject(new IdnError('IDN_UNAVAILABLE', 'the store is closed'));
      if (opts.readonly) return Promise.reject(new IdnError('IDN_INTERNAL', `database ${where} was opened read-only`));
      return new Promise<T>((resolve, reject) => {
        queue.push({ entry, apply: apply, hint, resolve: resolve as (v: unknown) => void, reject });
        kick();
      });
    },
    async close() {
      if (!open) return;
      while (running !== undefined) await running;
      open = false;
      await guarded('close', () => Promise.all([sql.end({ timeout: 5 }), replica !== sql ? replica.end({ timeout: 5 }) : undefined]));
    },
  };
}
