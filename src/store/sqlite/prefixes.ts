/** Prefixes (delegations and homed prefixes). */
import type { PrefixReads, PrefixRow } from '../types.js';
import type { Db, Sync } from './db.js';

const COLUMNS =
  'prefix_key AS prefixKey, prefix, parent_key AS parentKey, owner_json AS ownerJson, site, status, created_at AS createdAt, updated_at AS updatedAt, redirect';

type DbRow = Omit<PrefixRow, 'redirect'> & { redirect: number | null };

/** SQLite has no boolean: the redirect column holds 0, 1 or NULL. */
function fromDb(row: DbRow | undefined): PrefixRow | undefined {
  return row === undefined ? undefined : { ...row, redirect: row.redirect === null ? null : row.redirect === 1 };
}

export function prefixReads(db: Db): Sync<PrefixReads> {
  const getPrefix = db.prepare(`SELECT ${COLUMNS} FROM prefixes WHERE prefix_key = ?`);
  const allPrefixes = db.prepare(`SELECT ${COLUMNS} FROM prefixes ORDER BY prefix_key`);
  return {
    getPrefix: (prefixKey) => fromDb(getPrefix.get(prefixKey) as DbRow | undefined),
    allPrefixes: () => (allPrefixes.all() as DbRow[]).map((r) => fromDb(r)!),
  };
}

export function prefixWrites(db: Db) {
  const put = db.prepare(
    `INSERT INTO prefixes (prefix_key, prefix, parent_key, owner_json, site, status, created_at, updated_at, redirect)
     VALUES (@prefixKey, @prefix, @parentKey, @ownerJson, @site, @status, @createdAt, @updatedAt, @redirect)
     ON CONFLICT (prefix_key) DO UPDATE SET owner_json = excluded.owner_json, site = excluded.site,
       status = excluded.status, updated_at = excluded.updated_at, redirect = excluded.redirect`,
  );
  const remove = db.prepare('DELETE FROM prefixes WHERE prefix_key = ?');
  return {
    put: (row: PrefixRow) => void put.run({ ...row, redirect: row.redirect == null ? null : row.redirect ? 1 : 0 }),
    remove: (prefixKey: string) => void remove.run(prefixKey),
  };
}
