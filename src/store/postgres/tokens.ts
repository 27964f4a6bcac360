/** API tokens (only the secret's hash is stored). */
import type { TokenReads, TokenRow } from '../types.js';
import type { Q } from './db.js';

const COLUMNS = 'id, role, prefixes_json AS "prefixesJson", secret_hash AS "secretHash", label, created_at AS "createdAt", revoked_at AS "revokedAt"';

export function tokenReads(q: Q): TokenReads {
  const one = async (where: string, arg: string) =>
    (await q.unsafe<TokenRow[]>(`SELECT ${COLUMNS} FROM tokens WHERE ${where} = $1`, [arg], { prepare: true }))[0];
  return {
    tokenByHash: (hash) => one('secret_hash', hash),
    tokenById: (id) => one('id', id),
    listTokens: async () => [...(await q.unsafe<TokenRow[]>(`SELECT ${COLUMNS} FROM tokens ORDER BY created_at, id`, [], { prepare: true }))],
    async activeAdminCount() {
      const [row] = await q`SELECT count(*) FROM tokens WHERE role = 'admin' AND revoked_at IS NULL`.values();
      return row![0] as number;
    },
  };
}

export const tokenWrites = {
  async insert(q: Q, r: TokenRow): Promise<void> {
    await q`INSERT INTO tokens (id, role, prefixes_json, secret_hash, label, created_at, revoked_at)
      VALUES (${r.id}, ${r.role}, ${r.prefixesJson}, ${r.secretHash}, ${r.label}, ${r.createdAt}, ${r.revokedAt})`;
  },
  async revoke(q: Q, at: string, id: string): Promise<void> {
    await q`UPDATE tokens SET revoked_at = ${at} WHERE id = ${id} AND revoked_at IS NULL`;
  },
};
