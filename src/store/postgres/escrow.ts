/** Escrow: a consistent, streamed snapshot of the escrow tables, and verbatim restore. */
import { ESCROW_TABLES, snapshotQuery } from '../sqlite/escrow.js';
import type { EscrowOps } from '../types.js';
import type { Q, Sql } from './db.js';

/** Rows per round trip of the snapshot's cursors (never the whole table in memory). */
const BATCH = 1000;

export function escrowOps(sql: Sql): EscrowOps {
  const columns = new Map<string, Set<string>>();
  async function columnsOf(q: Q, table: string): Promise<Set<string>> {
    let cols = columns.get(table);
    if (cols === undefined) {
      const rows = await q`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ${table}`.values();
      cols = new Set(rows.map((r) => r[0] as string));
      columns.set(table, cols);
    }
    return cols;
  }
  return {
    async snapshot(row) {
      // One REPEATABLE READ transaction: every table from the same committed state.
      await sql.begin('isolation level repeatable read read only', async (tx) => {
        for (const table of ESCROW_TABLES)
          await tx.unsafe(snapshotQuery(table)).cursor(BATCH, (rows) => {
            for (const r of rows) row(table, { ...r });
          });
      });
    },
    async insertRows(table, rows) {
      if (rows.length === 0) return;
      await sql.begin(async (tx) => {
        // Between writes, as the SQLite engine's restore is: no audited write interleaves.
        await tx`SELECT 1 FROM chain_head WHERE id = 1 FOR UPDATE`;
        const known = await columnsOf(tx, table);
        // Columns only one engine has are left out (none today: records.id is on both since schema 2).
        const cols = Object.keys(rows[0]!).filter((c) => known.has(c));
        // The log's range partitions must reach the restored seqs before their rows arrive.
        if (table === 'audit_log' || table === 'audit_payloads')
          await tx`SELECT idnode_audit_partitions_ahead(${rows.reduce((max, r) => Math.max(max, Number(r.seq)), 0)})`;
        for (let i = 0; i < rows.length; i += 500) {
          const chunk = rows.slice(i, i + 500).map((r) => Object.fromEntries(cols.map((c) => [c, r[c] ?? null])));
          await tx`INSERT INTO ${tx(table)} ${tx(chunk as Array<Record<string, string | number | null>>, cols)}`;
        }
        // Values stored once, as the write path leaves them: a version repeating its record's current values gets the marker.
        if (table === 'record_versions')
          await tx`UPDATE record_versions v SET values_json = ''
            FROM unnest(${rows.map((r) => String(r.handle_key))}::text[], ${rows.map((r) => Number(r.version))}::int[]) AS f(handle_key, version), records r
            WHERE v.handle_key = f.handle_key AND v.version = f.version AND r.handle_key = f.handle_key AND r.version = f.version
              AND v.values_json = r.values_json`;
        if (table === 'records')
          await tx`INSERT INTO record_counts (prefix_key, n)
            SELECT prefix_key, count(*) FROM unnest(${rows.map((r) => String(r.prefix_key))}::text[]) AS r(prefix_key) GROUP BY prefix_key
            ON CONFLICT (prefix_key) DO UPDATE SET n = record_counts.n + excluded.n`;
        if (table === 'records') await tx`UPDATE chain_head SET record_id = (SELECT coalesce(max(id), 0) FROM records) WHERE id = 1`;
        if (table === 'audit_log') {
          await tx`UPDATE chain_head h SET seq = a.seq, hash = a.hash FROM (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) a
            WHERE h.id = 1 AND a.seq > h.seq`;
          // A restore carries no tokens: verification lets those this log wrote be absent, no later ones.
          await tx`INSERT INTO meta (key, value) SELECT 'escrow.restored_through', max(seq)::text FROM audit_log
            ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
        }
      });
    },
  };
}
