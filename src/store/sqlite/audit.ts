/**
 * The hash-chained audit log: appending an entry with its write set, paging it, and the reads
 * engine-independent verification (src/store/verify.ts) walks it with.
 */
import {
  AUDITED,
  type AuditedTable,
  type AuditedTableName,
  auditedSelect,
  auditHash,
  GENESIS_HASH,
  rowHash,
  sha256,
  VERSION_VALUES,
  VERSIONS_FROM,
  type WriteSetRow,
  writeSetText,
} from '../chain.js';
import type { AuditEntryFull, AuditReads, AuditRow, AuditVerifyReads, EntryVersion } from '../types.js';
import type { Db, Sync } from './db.js';

const ENTRY_COLUMNS = 'seq, at, actor, action, target, digest, rows_digest AS rowsDigest, prev_hash AS prevHash, hash';

function headOf(stmt: { get(): unknown }): { seq: number; hash: string } {
  return (stmt.get() as { seq: number; hash: string } | undefined) ?? { seq: 0, hash: GENESIS_HASH };
}

/** Rows of an audited table as arrays in AUDITED_TABLES column order, after a key, in key order. */
function tablePager(db: Db, table: AuditedTable) {
  const { columns, from } = auditedSelect(table);
  const cols = columns.join(', ');
  const keys = columns.slice(0, table.keyColumns);
  const order = keys.join(', ');
  const first = db.prepare(`SELECT ${cols} FROM ${from} ORDER BY ${order} LIMIT ?`).raw();
  const after = db.prepare(`SELECT ${cols} FROM ${from} WHERE (${order}) > (${keys.map(() => '?').join(', ')}) ORDER BY ${order} LIMIT ?`).raw();
  return (afterKey: readonly unknown[] | null, limit: number) => (afterKey === null ? first.all(limit) : after.all(...afterKey, limit)) as unknown[][];
}

export function auditReads(db: Db): Sync<Omit<AuditReads, 'verifyAudit'> & AuditVerifyReads> {
  const head = db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
  const page = db.prepare(`SELECT ${ENTRY_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`);
  const withPayload = db.prepare(
    `SELECT a.seq, a.at, a.actor, a.action, a.target, a.digest, a.rows_digest AS rowsDigest, a.prev_hash AS prevHash, a.hash,
       p.payload, a.write_set AS writeSet
     FROM audit_log a LEFT JOIN audit_payloads p ON p.seq = a.seq WHERE a.seq > ? ORDER BY a.seq LIMIT ?`,
  );
  const versionsBySeq = db.prepare(
    `SELECT v.handle_key AS handleKey, v.version, v.handle, ${VERSION_VALUES} AS valuesJson FROM ${VERSIONS_FROM} WHERE v.audit_seq = ?`,
  );
  const restored = db.prepare("SELECT value FROM meta WHERE key = 'escrow.restored_through'").pluck();
  const pagers = new Map([...AUDITED.values()].map((t) => [t.name, tablePager(db, t)]));
  return {
    auditPage: (afterSeq, limit) => page.all(afterSeq, limit) as AuditRow[],
    auditHead: () => headOf(head),
    auditEntries: (afterSeq, limit) => withPayload.all(afterSeq, limit) as AuditEntryFull[],
    entryVersions: (seq) => versionsBySeq.all(seq) as EntryVersion[],
    tablePage: (table, afterKey, limit) => pagers.get(table)!(afterKey, limit),
    restoredThrough: () => Number((restored.get() as string | undefined) ?? 0),
  };
}

export function auditWrites(db: Db) {
  const head = db.prepare('SELECT seq, hash, rows_digest AS rowsDigest FROM audit_log ORDER BY seq DESC LIMIT 1');
  const insert = db.prepare(
    `INSERT INTO audit_log (seq, at, actor, action, target, digest, rows_digest, write_set, prev_hash, hash)
     VALUES (@seq, @at, @actor, @action, @target, @digest, @rowsDigest, @writeSet, @prevHash, @hash)`,
  );
  const insertPayload = db.prepare('INSERT INTO audit_payloads (seq, payload) VALUES (?, ?)');
  const rowStatements = new Map(
    [...AUDITED.values()].map((t) => {
      const { columns, from } = auditedSelect(t);
      const where = columns
        .slice(0, t.keyColumns)
        .map((c) => `${c} = ?`)
        .join(' AND ');
      return [t.name, db.prepare(`SELECT ${columns.join(', ')} FROM ${from} WHERE ${where}`).raw()];
    }),
  );
  /** The write-set row of a table row as it is now, inside the write's transaction. */
  function rowNow(table: AuditedTableName, key: readonly unknown[]): WriteSetRow {
    const row = rowStatements.get(table)!.get(...key) as unknown[] | undefined;
    return { table, key: JSON.stringify(key), hash: row === undefined ? null : rowHash(row) };
  }
  return {
    head: () => headOf(head),
    /** Whether the newest entry has a write set (false also for an empty log). */
    headCovered: () => ((head.get() as { rowsDigest: string | null } | undefined)?.rowsDigest ?? null) !== null,
    rowNow,
    /** Appends the entry after `prevHash` with its write set, keeping `payload` when given. */
    append(prevHash: string, base: Omit<AuditRow, 'hash' | 'prevHash' | 'rowsDigest'>, payload: string | undefined, rows: WriteSetRow[]): void {
      if (payload !== undefined) insertPayload.run(base.seq, payload);
      // Kept or not: a payload slipped in later for this entry is then found too.
      const writeSet = writeSetText([...rows, rowNow('audit_payloads', [base.seq])]);
      const entry = { ...base, rowsDigest: sha256(writeSet) };
      insert.run({ ...entry, writeSet, prevHash, hash: auditHash(prevHash, entry) });
    },
  };
}

/** Rows per re-base entry: a large file re-bases in bounded entries. */
const REBASE_ROWS = 5000;

/**
 * Write sets begin with schema v8. A log whose newest entry has none (an older file, or rows
 * written with history off) gets `audit.rebase` entries whose write sets are every row of
 * every audited table as it is now, so verification has a baseline: later edits of those rows
 * are found, edits made before the re-base are not (README, "What audit verify proves").
 * Returns the number of entries written.
 */
export function rebaseIfNeeded(db: Db, at: string): number {
  const writes = auditWrites(db);
  if (writes.headCovered()) return 0;
  const pagers = [...AUDITED.values()].map((t) => [t, tablePager(db, t)] as const);
  let written = 0;
  // Checked again inside the write transaction: processes opening the file at once re-base it once.
  db.transaction(() => {
    if (writes.headCovered()) return;
    if (writes.head().seq === 0 && pagers.every(([, page]) => page(null, 1).length === 0)) return;
    const append = (target: string, rows: WriteSetRow[], note: string) => {
      const { seq, hash } = writes.head();
      const payload = `schema v8 re-base: ${note}`;
      writes.append(hash, { seq: seq + 1, at, actor: 'system', action: 'audit.rebase', target, digest: sha256(payload) }, undefined, rows);
      written++;
    };
    for (const [table, page] of pagers) {
      let after: unknown[] | null = null;
      for (;;) {
        const rows = page(after, REBASE_ROWS);
        if (rows.length === 0) break;
        append(
          table.name,
          rows.map((r) => ({ table: table.name, key: JSON.stringify(r.slice(0, table.keyColumns)), hash: rowHash(r) })),
          `${table.name}, ${rows.length} rows from ${JSON.stringify(rows[0]!.slice(0, table.keyColumns))}`,
        );
        if (rows.length < REBASE_ROWS) break;
        after = rows[rows.length - 1]!.slice(0, table.keyColumns);
      }
    }
    // Every table empty but a log: one entry still marks where write sets begin.
    if (written === 0) append('*', [], 'no rows');
  }).immediate();
  return written;
}
