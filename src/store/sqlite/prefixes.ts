/** Prefixes (delegations and homed prefixes). */
import type { PrefixReads, PrefixRow } from '../types.js';
import type { Db, Sync } from './db.js';

const COLUMNS =
  'prefix_key AS prefixKey, prefix, parent_key AS parentKey, owner_json AS ownerJson, site, status, created_at AS createdAt, updated_at AS updatedAt';

export function prefixReads(db: Db): Sync<PrefixReads> {
  const getPrefix = db.prepare(`SELECT ${COLUMNS} FROM prefixes WHERE prefix_key = ?`);
  const allPrefixes = db.prepare(`SELECT ${COLUMNS} FROM prefixes ORDER BY prefix_key`);
  return {
    getPrefix: (prefixKey) => getPrefix.get(prefixKey) as PrefixRow | undefined,
    allPrefixes: () => allPrefixes.all() as PrefixRow[],
  };
}

export function prefixWrites(db: Db) {
  const put = db.prepare(
    `INSERT INTO prefixes (prefix_key, prefix, parent_key, owner_json, site, status, created_at, updated_at)
     VALUES (@prefixKey, @prefix, @parentKey, @ownerJson, @site, @status, @createdAt, @updatedAt)
     ON CONFLICT (prefix_key) DO UPDATE SET owner_json = excluded.owner_json, site = excluded.site,
       status = excluded.status, updated_at = excluded.updated_at`,
  );
  const remove = db.prepare('DELETE FROM prefixes WHERE prefix_key = ?');
  return {
    put: (row: PrefixRow) => void put.run(row),
    remove: (prefixKey: string) => void remove.run(prefixKey),
  };
}
