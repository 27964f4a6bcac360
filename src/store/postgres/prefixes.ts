/** Prefixes (delegations and homed prefixes). */
import type { PrefixReads, PrefixRow } from '../types.js';
import type { Q } from './db.js';

const COLUMNS =
  'prefix_key AS "prefixKey", prefix, parent_key AS "parentKey", owner_json AS "ownerJson", site, status, created_at AS "createdAt", updated_at AS "updatedAt"';

export function prefixReads(q: Q): PrefixReads {
  return {
    async getPrefix(prefixKey) {
      const [row] = await q.unsafe<PrefixRow[]>(`SELECT ${COLUMNS} FROM prefixes WHERE prefix_key = $1`, [prefixKey], { prepare: true });
      return row;
    },
    allPrefixes: async () => [...(await q.unsafe<PrefixRow[]>(`SELECT ${COLUMNS} FROM prefixes ORDER BY prefix_key`, [], { prepare: true }))],
  };
}

export const prefixWrites = {
  async put(q: Q, r: PrefixRow): Promise<void> {
    await q`INSERT INTO prefixes (prefix_key, prefix, parent_key, owner_json, site, status, created_at, updated_at)
      VALUES (${r.prefixKey}, ${r.prefix}, ${r.parentKey}, ${r.ownerJson}, ${r.site}, ${r.status}, ${r.createdAt}, ${r.updatedAt})
      ON CONFLICT (prefix_key) DO UPDATE SET owner_json = excluded.owner_json, site = excluded.site,
        status = excluded.status, updated_at = excluded.updated_at`;
  },
  async remove(q: Q, prefixKey: string): Promise<void> {
    await q`DELETE FROM prefixes WHERE prefix_key = ${prefixKey}`;
  },
};
