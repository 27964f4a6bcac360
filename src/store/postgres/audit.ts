/**
 * The hash-chained audit log on PostgreSQL: appending entries with their write sets, paging
 * it, the reads engine-independent verification (src/store/verify.ts) walks it with, and the
 * re-base of a log written before write sets. Rows are read as SQLite's engine reads them
 * (arrays in AUDITED_TABLES column order, integers as numbers): write sets hash the same.
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
import type { Q, Sql } from './db.js';

const COLUMNS = 'seq, at, actor, action, target, digest, rows_digest AS "rowsDigest", prev_hash AS "prevHash", hash';

/** Key columns that are integers; every other key column is text COLLATE "C" (SQLite's byte order). */
const INTEGER_KEYS = new Set(['events.id', 'edges.id', 'sync_reports.id', 'record_versions.version', 'audit_payloads.seq']);

const keyColumns = (t: AuditedTable) => t.columns.slice(0, t.keyColumns);
const isInteger = (t: AuditedTable, column: string) => INTEGER_KEYS.has(`${t.name}.${column}`);

/** Rows of an audited table as arrays in AUDITED_TABLES column order, after a key, in key order. */
function tablePager(q: Q, table: AuditedTable) {
  const { columns, from } = auditedSelect(table);
  const cols = columns.join(', ');
  const keys = keyColumns(table);
  const order = keys.map((c, i) => (isInteger(table, c) ? columns[i] : `${columns[i]} COLLATE "C"`)).join(', ');
  const params = keys.map((c, i) => (isInteger(table, c) ? `$${i + 1}::bigint` : `$${i + 1}::text COLLATE "C"`)).join(', ');
  const first = `SELECT ${cols} FROM ${from} ORDER BY ${order} LIMIT $1`;
  const after = `SELECT ${cols} FROM ${from} WHERE (${order}) > (${params}) ORDER BY ${order} LIMIT $${keys.length + 1}`;
  return async (afterKey: readonly unknown[] | null, limit: number): Promise<unknown[][]> => [
    ...(await q
      .unsafe(afterKey === null ? first : after, (afterKey === null ? [limit] : [...afterKey, limit]) as Array<string | number>, { prepare: true })
      .values()),
  ];
}

export function auditReads(q: Q): Omit<AuditReads, 'verifyAudit'> & AuditVerifyReads {
  const pagers = new Map([...AUDITED.values()].map((t) => [t.name, tablePager(q, t)]));
  return {
    auditPage: async (afterSeq, limit) => [
      ...(await q.unsafe<AuditRow[]>(`SELECT ${COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, [afterSeq, limit], { prepare: true })),
    ],
    // The newest entry, not chain_head: a tampered log must not be hidden by the head row.
    auditHead: async () => (await newest(q)) ?? { seq: 0, hash: GENESIS_HASH },
    auditEntries: async (afterSeq, limit) => [
      ...(await q.unsafe<AuditEntryFull[]>(
        `SELECT a.seq, a.at, a.actor, a.action, a.target, a.digest, a.rows_digest AS "rowsDigest", a.prev_hash AS "prevHash", a.hash,
           p.payload, a.write_set AS "writeSet"
         FROM audit_log a LEFT JOIN audit_payloads p ON p.seq = a.seq WHERE a.seq > $1 ORDER BY a.seq LIMIT $2`,
        [afterSeq, limit],
        { prepare: true },
      )),
    ],
    entryVersions: async (seq) => [
      ...(await q.unsafe<EntryVersion[]>(
        `SELECT v.handle_key AS "handleKey", v.version, v.handle, ${VERSION_VALUES} AS "valuesJson" FROM ${VERSIONS_FROM} WHERE v.audit_seq = $1`,
        [seq],
        { prepare: true },
      )),
    ],
    tablePage: (table, afterKey, limit) => pagers.get(table)!(afterKey, limit),
    async restoredThrough() {
      const [row] = await q`SELECT value FROM meta WHERE key = 'escrow.restored_through'`.values();
      return Number((row?.[0] as string | undefined) ?? 0);
    },
  };
}

async function newest(q: Q): Promise<{ seq: number; hash: string; rowsDigest: string | null } | undefined> {
  const [row] = await q.unsafe<Array<{ seq: number; hash: string; rowsDigest: string | null }>>(
    'SELECT seq, hash, rows_digest AS "rowsDigest" FROM audit_log ORDER BY seq DESC LIMIT 1',
    [],
    { prepare: true },
  );
  return row;
}

/** Per audited table, the statement reading the rows of a set of keys (one round trip per table a write touched). */
const ROWS_OF = new Map(
  [...AUDITED.values()].map((t) => {
    const { columns, from } = auditedSelect(t);
    const keys = columns.slice(0, t.keyColumns);
    const arrays = keyColumns(t).map((c, i) => `$${i + 1}::${isInteger(t, c) ? 'bigint' : 'text'}[]`);
    const where = keys.length === 1 ? `${keys[0]} = ANY(${arrays[0]})` : `(${keys.join(', ')}) IN (SELECT * FROM unnest(${arrays.join(', ')}))`;
    return [t.name, `SELECT ${columns.join(', ')} FROM ${from} WHERE ${where}`];
  }),
);

/**
 * The write-set rows of `touched` (table → keys, each the array of its key columns) as they are
 * now in `q`'s transaction: what the write that touched them left (null hash: absent).
 */
export async function rowsNow(q: Q, touched: Map<AuditedTableName, Array<readonly unknown[]>>): Promise<WriteSetRow[]> {
  const out: WriteSetRow[] = [];
  await Promise.all(
    [...touched].map(async ([name, keys]) => {
      const table = AUDITED.get(name)!;
      const columns = keyColumns(table).map((_, i) => keys.map((k) => k[i]));
      const rows = await q.unsafe(ROWS_OF.get(name)!, columns as never[], { prepare: true }).values();
      const found = new Map(rows.map((r) => [JSON.stringify(r.slice(0, table.keyColumns)), rowHash(r)]));
      for (const k of keys) {
        const key = JSON.stringify(k);
        out.push({ table: name, key, hash: found.get(key) ?? null });
      }
    }),
  );
  return out;
}

/** An entry with its write set (the rows it touched, plus its own audit_payloads row) and hash. */
export function auditEntry(
  prevHash: string,
  base: Omit<AuditRow, 'hash' | 'prevHash' | 'rowsDigest'>,
  payload: string | undefined,
  rows: WriteSetRow[],
): AuditRow & { writeSet: string } {
  // Kept or not: a payload slipped in later for this entry is then found too.
  const own: WriteSetRow = { table: 'audit_payloads', key: JSON.stringify([base.seq]), hash: payload === undefined ? null : rowHash([base.seq, payload]) };
  const writeSet = writeSetText([...rows, own]);
  const entry = { ...base, rowsDigest: sha256(writeSet) };
  return { ...entry, writeSet, prevHash, hash: auditHash(prevHash, entry) };
}

/**
 * Every this many entries the write path has the database check that a whole partition of the
 * log is ready past the head (schema 3): after a check the room exceeds one partition, and the
 * next check comes within this many entries, so any partition size above it never runs out.
 */
export const PARTITION_CHECK_EVERY = 100;

/** The entries a batch appended (hashes computed as they were added), in one statement each table. */
export async function insertAudit(q: Q, rows: Array<AuditRow & { writeSet: string }>, payloads: Array<[number, string]>): Promise<void> {
  // Sent at once, in order (execute): the engine pipelines its COMMIT right behind them.
  const sent: Array<Promise<unknown>> = [];
  // Seqs are gapless: each multiple of the interval is in exactly one batch.
  if (rows.some((r) => r.seq % PARTITION_CHECK_EVERY === 0)) sent.push(q`SELECT idnode_audit_partitions_ahead(${rows.at(-1)!.seq})`.execute());
  if (rows.length > 0)
    sent.push(
      q`INSERT INTO audit_log (seq, at, actor, action, target, digest, rows_digest, write_set, prev_hash, hash)
      SELECT * FROM unnest(${rows.map((r) => r.seq)}::bigint[], ${rows.map((r) => r.at)}::text[], ${rows.map((r) => r.actor)}::text[],
        ${rows.map((r) => r.action)}::text[], ${rows.map((r) => r.target)}::text[], ${rows.map((r) => r.digest)}::text[],
        ${rows.map((r) => r.rowsDigest ?? null)}::text[], ${rows.map((r) => r.writeSet)}::text[],
        ${rows.map((r) => r.prevHash)}::text[], ${rows.map((r) => r.hash)}::text[])`.execute(),
    );
  if (payloads.length > 0)
    sent.push(
      q`INSERT INTO audit_payloads (seq, payload) SELECT * FROM unnest(${payloads.map((r) => r[0])}::bigint[], ${payloads.map((r) => r[1])}::text[])`.execute(),
    );
  await Promise.all(sent);
}

/** Rows per re-base entry: a large database re-bases in bounded entries. */
const REBASE_ROWS = 5000;

/**
 * Write sets begin with PostgreSQL schema 2 (SQLite v8). A log whose newest entry has none (a
 * database schema 1 wrote, or rows written with history off) gets `audit.rebase` entries whose
 * write sets are every row of every audited table as it is now, as the SQLite engine writes
 * them (README, "What audit verify proves"). Returns the number of entries written.
 */
export async function rebaseIfNeeded(sql: Sql, at: string): Promise<number> {
  const head = await newest(sql);
  if (head !== undefined && head.rowsDigest !== null) return 0;
  return sql.begin(async (tx) => {
    // Under the chain head's lock, checked again: nodes opening the database at once re-base it once.
    await tx`SELECT 1 FROM chain_head WHERE id = 1 FOR UPDATE`;
    const last = await newest(tx);
    if (last !== undefined && last.rowsDigest !== null) return 0;
    const pagers = [...AUDITED.values()].map((t) => [t, tablePager(tx, t)] as const);
    if (last === undefined && (await Promise.all(pagers.map(([, page]) => page(null, 1)))).every((rows) => rows.length === 0)) return 0;
    let seq = last?.seq ?? 0;
    let hash = last?.hash ?? GENESIS_HASH;
    const entries: Array<AuditRow & { writeSet: string }> = [];
    const append = async (target: string, rows: WriteSetRow[], note: string) => {
      const payload = `schema v8 re-base: ${note}`;
      const e = auditEntry(hash, { seq: seq + 1, at, actor: 'system', action: 'audit.rebase', target, digest: sha256(payload) }, undefined, rows);
      entries.push(e);
      seq = e.seq;
      hash = e.hash;
      if (entries.length >= 16) await insertAudit(tx, entries.splice(0), []);
    };
    for (const [table, page] of pagers) {
      let after: unknown[] | null = null;
      for (;;) {
        const rows = await page(after, REBASE_ROWS);
        if (rows.length === 0) break;
        await append(
          table.name,
          rows.map((r) => ({ table: table.name, key: JSON.stringify(r.slice(0, table.keyColumns)), hash: rowHash(r) })),
          `${table.name}, ${rows.length} rows from ${JSON.stringify(rows[0]!.slice(0, table.keyColumns))}`,
        );
        if (rows.length < REBASE_ROWS) break;
        after = rows[rows.length - 1]!.slice(0, table.keyColumns);
      }
    }
    // Every table empty but a log: one entry still marks where write sets begin.
    if (seq === (last?.seq ?? 0)) await append('*', [], 'no rows');
    await insertAudit(tx, entries, []);
    await tx`UPDATE chain_head SET seq = ${seq}, hash = ${hash} WHERE id = 1`;
    return seq - (last?.seq ?? 0);
  });
}
