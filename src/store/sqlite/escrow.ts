/** Escrow: a consistent snapshot of the escrow tables, and verbatim restore into an empty file. */
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

export function escrowOps(db: Db): Sync<EscrowOps> {
  return {
    snapshot(row) {
      // One read transaction: every table from the same committed state.
      db.transaction(() => {
        for (const table of ESCROW_TABLES) for (const r of db.prepare(`SELECT * FROM ${table}`).iterate()) row(table, r as Record<string, unknown>);
      })();
    },
    insertRows(table, rows) {
      if (rows.length === 0) return;
      const cols = Object.keys(rows[0]!);
      const stmt = db.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`);
      db.transaction(() => {
        for (const r of rows) stmt.run(r);
        // A restore carries no tokens: verification lets those this log wrote be absent, no later ones.
        if (table === 'audit_log')
          db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('escrow.restored_through', (SELECT max(seq) FROM audit_log))").run();
      }).immediate();
    },
  };
}
