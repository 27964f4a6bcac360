/** Pure helpers of the audit chain, its write sets and timestamps, shared by every engine. */
import { createHash, hash } from 'node:crypto';
import type { AuditRow } from './types.js';

export const GENESIS_HASH = '0'.repeat(64);

// The one-shot form (Node >= 20.12) makes no Hash object: about 1.5 µs less per write-set row, several per bulk record.
const oneShot = typeof hash === 'function';

export function sha256(text: string): string {
  return oneShot ? hash('sha256', text, 'hex') : createHash('sha256').update(text).digest('hex');
}

/**
 * The entry's hash. An entry with a write set (schema v8) also commits to its rows digest, so
 * editing any row it wrote, or the write set itself, breaks the chain; older entries hash as before.
 */
export function auditHash(prevHash: string, e: Omit<AuditRow, 'hash' | 'prevHash'>): string {
  const fields: unknown[] = [e.seq, e.at, e.actor, e.action, e.target, e.digest];
  if (e.rowsDigest !== undefined && e.rowsDigest !== null) fields.push(e.rowsDigest);
  return sha256(`${prevHash}\n${JSON.stringify(fields)}`);
}

/** The line a record version contributes to its audit digest (values null: deleted). */
export function versionLine(handle: string, valuesJson: string | null): string {
  return `${handle}\n${valuesJson ?? ''}`;
}

export function isoSeconds(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/**
 * A table whose every row the audit chain commits to: all its columns in this order (a row's
 * canonical text is the JSON array of them), the leading `key` of them its primary key. An
 * engine reads rows of these tables as arrays in exactly this column order, integers as
 * numbers, text as strings, NULL as null.
 */
export interface AuditedTable {
  readonly name: AuditedTableName;
  readonly columns: readonly string[];
  /** How many leading columns form the primary key. */
  readonly keyColumns: number;
  /** The column naming the audit entry that wrote the row, when the table has one. */
  readonly seqColumn?: string;
}

export type AuditedTableName =
  'tokens' | 'prefixes' | 'templates' | 'events' | 'edges' | 'lineage_names' | 'sync_reports' | 'records' | 'record_versions' | 'audit_payloads';

export const AUDITED_TABLES: readonly AuditedTable[] = [
  { name: 'tokens', columns: ['id', 'role', 'prefixes_json', 'secret_hash', 'label', 'created_at', 'revoked_at'], keyColumns: 1 },
  { name: 'prefixes', columns: ['prefix_key', 'prefix', 'parent_key', 'owner_json', 'site', 'status', 'created_at', 'updated_at', 'redirect'], keyColumns: 1 },
  { name: 'templates', columns: ['prefix_key', 'version', 'prefix', 'body_json', 'used', 'created_at', 'updated_at'], keyColumns: 2 },
  {
    name: 'events',
    columns: ['id', 'type', 'action', 'event_time', 'record_time', 'actor', 'body_json', 'audit_seq'],
    keyColumns: 1,
    seqColumn: 'audit_seq',
  },
  { name: 'edges', columns: ['id', 'from_key', 'to_key', 'type', 'since', 'until', 'event_id', 'until_event'], keyColumns: 1 },
  { name: 'lineage_names', columns: ['key', 'handle'], keyColumns: 1 },
  { name: 'sync_reports', columns: ['id', 'reporter', 'idem_key', 'kind', 'body_json', 'outcome', 'message', 'received_at'], keyColumns: 1 },
  {
    name: 'records',
    columns: ['handle_key', 'id', 'handle', 'prefix_key', 'values_json', 'public_json', 'version', 'updated_at', 'max_age', 'expires_at', 'etag'],
    keyColumns: 1,
  },
  {
    name: 'record_versions',
    columns: ['handle_key', 'version', 'handle', 'at', 'actor', 'action', 'values_json', 'audit_seq'],
    keyColumns: 2,
    seqColumn: 'audit_seq',
  },
  { name: 'audit_payloads', columns: ['seq', 'payload'], keyColumns: 1, seqColumn: 'seq' },
];

/**
 * Schema v9 stores a record's values once: the version row of a record's current version holds
 * this marker instead of a copy of records.values_json (a write that replaces or deletes the
 * record first puts the old values into it). NULL still means a deletion.
 */
export const CURRENT_VALUES = '';

/** The FROM of a read of record versions as `v`, with the record row `r` that a current version's values are in. */
export const VERSIONS_FROM = 'record_versions v LEFT JOIN records r ON r.handle_key = v.handle_key AND r.version = v.version';

/** A version's values read through VERSIONS_FROM: what the row would hold if values were stored twice. */
export const VERSION_VALUES = "CASE WHEN v.values_json = '' THEN r.values_json ELSE v.values_json END";

/**
 * The select list and FROM an engine reads an audited table's rows with, each column
 * qualified: a version row as verification hashes it, its values resolved.
 */
export function auditedSelect(table: AuditedTable): { columns: string[]; from: string } {
  if (table.name === 'record_versions') return { columns: table.columns.map((c) => (c === 'values_json' ? VERSION_VALUES : `v.${c}`)), from: VERSIONS_FROM };
  return { columns: table.columns.map((c) => `t.${c}`), from: `${table.name} t` };
}

export const AUDITED: ReadonlyMap<string, AuditedTable> = new Map(AUDITED_TABLES.map((t) => [t.name, t]));

/** One row of a write set: the row's state once the write committed (hash null: absent). */
export interface WriteSetRow {
  table: string;
  /** The JSON array of the row's key columns. */
  key: string;
  hash: string | null;
}

export function rowKey(table: AuditedTable, row: readonly unknown[]): string {
  return JSON.stringify(row.slice(0, table.keyColumns));
}

export function rowHash(row: readonly unknown[]): string {
  return sha256(JSON.stringify(row));
}

/** The write set's stored text: one `table TAB key TAB hash` line per row (`-` for absent), sorted. */
export function writeSetText(rows: Iterable<WriteSetRow>): string {
  return [...rows]
    .map((r) => `${r.table}\t${r.key}\t${r.hash ?? '-'}`)
    .sort()
    .join('\n');
}

/** Parses a stored write set; undefined when it is not one (edited into something else). */
export function parseWriteSet(text: string): WriteSetRow[] | undefined {
  if (text === '') return [];
  const out: WriteSetRow[] = [];
  for (const line of text.split('\n')) {
    const [table, key, hash, extra] = line.split('\t');
    if (table === undefined || key === undefined || hash === undefined || extra !== undefined || !AUDITED.has(table)) return undefined;
    if (hash !== '-' && !/^[0-9a-f]{64}$/.test(hash)) return undefined;
    out.push({ table, key, hash: hash === '-' ? null : hash });
  }
  return out;
}
