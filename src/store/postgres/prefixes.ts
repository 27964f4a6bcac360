/** Prefixes (delegations and homed prefixes). */
import type { PrefixReads, PrefixRow } from '../types.js';
import type { Q } from './db.js';

const COLUMNS =
  'prefix_key AS "prefixKey", prefix, parent_key AS "parentKey", owner_json AS "ownerJson", site, status, created_at AS "createdAt", updated_at AS "updatedAt", redirect';

type DbRow = Omit<PrefixRow, 'redirect'> & { redirect: number | null };

/** Stored as SQLite stores it, 0, 1 or NULL: the prefix's audited row hashes the same on both engines. */
function fromDb(row: DbRow | undefined): PrefixRow | undefined {
  return row === undefined ? undefined : { ...row, redirect: row.redirect === null ? null : row.redirect === 1 };
}

export function prefixReads(q: Q): PrefixReads {
  return {
    async getPrefix(prefixKey) {
      const [row] = await q.unsafe<DbRow[]>(`SELECT ${COLUMNS} FROM prefixes WHERE prefix_key = $1`, [prefixKey], { prepare: true });
      return fromDb(row);
    },
    allPrefixes: async () => (await q.unsafe<DbRow[]>(`SELECT ${COLUMNS} FROM prefixes ORDER BY prefix_key`, [], { prepare: true })).map((r) => fromDb(r)!),
  };
}

export const prefixWrites = {
  async put(q: Q, r: PrefixRow): Promise<void> {
    const redirect = r.redirect == null ? null : r.redirect ? 1 : 0;
    await q`INSERT INTO prefixes (prefix_key, prefix, parent_key, owner_json, site, status, created_at, updated_at, redirect)
      VALUES (${r.prefixKey}, ${r.prefix}, ${r.parentKey}, ${r.ownerJson}, ${r.site}, ${r.status}, ${r.createdAt}, ${r.updatedAt}, ${redirect})
      ON CONFLICT (prefix_key) DO UPDATE SET owner_json = excluded.owner_json, site = excluded.site,
        status = excluded.status, updated_at = excluded.updated_at, redirect = excluded.redirect`;
  },
  async remove(q: Q, prefixKey: string): Promise<void> {
    await q`DELETE FROM prefixes WHERE prefix_key = ${prefixKey}`;
  },
};
