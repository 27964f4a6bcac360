/** Escrow: a consistent snapshot of the escrow tables, and verbatim restore into an empty file. */
import { AUDITED, auditedSelect } from '../chain.js';
import type { EscrowOps, EscrowTable } from '../types.js';
import type { Db, Sync } from './db.js';

/** Tables an escrow export carries (tokens and the outbox stay with the node). */
export const ESCROW_TABLES: readonly EscrowTable[] = [
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
];

/** An export's read of `table`: every column; a version's values as stored before v9 (resolved from its record). */
export function snapshotQuery(table: EscrowTable): string {
  if (table !== 'record_versions') return `SELECT * FROM ${table}`;
  const t = AUDITED.get(table)!;
  const { columns, from } = auditedSelect(t);
  return `SELECT ${columns.map((c, i) => `${c} AS ${t.columns[i]}`).join(', ')} FROM ${from}`;
}

/**
 * After a restore's version rows: each that repeats its record's current values gets the
 * marker instead (values stored once, as the write path leaves them).
 */
const COMPACT_VERSION = `UPDATE record_versions SET values_json = ''
  WHERE handle_key = ? AND version = ? AND values_json = (SELECT values_json FROM records WHERE handle_key = ? AND version = ?)`;

export function escrowOps(db: Db): Sync<EscrowOps> {
  return {
    snapshot(row) {
      // One read transaction: every table from the same committed state.
      db.transaction(() => {
        for (const table of ESCROW_TABLES) for (const r of db.prepare(snapshotQuery(table)).iterate()) row(table, r as Record<string, unknown>);
      })();
    },
    insertRows(table, rows) {
      if (rows.length === 0) return;
      const cols = Object.keys(rows[0]!);
      const stmt = db.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
      db.transaction(() => {
        for (const r of rows) stmt.run(r);
        if (table === 'record_versions') {
          const compact = db.prepare(COMPACT_VERSION);
          for (const r of rows) compact.run(r.handle_key, r.version, r.handle_key, r.version);
        }
        // A restore carries no tokens: verification lets those this log wrote be absent, no later ones.
        if (table === 'audit_log')
          db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('escrow.restored_through', (SELECT max(seq) FROM audit_log))").run();
      }).immediate();
    },
  };
}
