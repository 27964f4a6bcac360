/** API tokens (only the secret's hash is stored). */
import type { TokenReads, TokenRow } from '../types.js';
import type { Db, Sync } from './db.js';

const COLUMNS = 'id, role, prefixes_json AS prefixesJson, secret_hash AS secretHash, label, created_at AS createdAt, revoked_at AS revokedAt';

export function tokenReads(db: Db): Sync<TokenReads> {
  const byHash = db.prepare(`SELECT ${COLUMNS} FROM tokens WHERE secret_hash = ?`);
  const byId = db.prepare(`SELECT ${COLUMNS} FROM tokens WHERE id = ?`);
  const list = db.prepare(`SELECT ${COLUMNS} FROM tokens ORDER BY created_at, id`);
  const activeAdmins = db.prepare("SELECT count(*) FROM tokens WHERE role = 'admin' AND revoked_at IS NULL").pluck();
  return {
    tokenByHash: (hash) => byHash.get(hash) as TokenRow | undefined,
    tokenById: (id) => byId.get(id) as TokenRow | undefined,
    listTokens: () => list.all() as TokenRow[],
    activeAdminCount: () => activeAdmins.get() as number,
  };
}

export function tokenWrites(db: Db) {
  const insert = db.prepare(
    'INSERT INTO tokens (id, role, prefixes_json, secret_hash, label, created_at, revoked_at) VALUES (@id, @role, @prefixesJson, @secretHash, @label, @createdAt, @revokedAt)',
  );
  const revoke = db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  return {
    insert: (row: TokenRow) => void insert.run(row),
    revoke: (at: string, id: string) => void revoke.run(at, id),
  };
}
