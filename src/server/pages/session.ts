/**
 * Auditor sessions for the pages: a signed (HMAC-SHA256), expiring cookie naming a token id.
 * Only page routes read it; the /api routes authenticate by the Authorization header alone.
 * The token is looked up on every page, so revoking it ends the session at once.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Principal, Tokens } from '../../registry/tokens.js';

export const COOKIE = 'idn_face';

/** The configured secret, else one generated once and kept beside the database file. */
export function sessionSecret(configured: string, dbPath: string): Buffer {
  if (configured !== '') return Buffer.from(configured, 'utf8');
  if (dbPath === '' || dbPath === ':memory:') return randomBytes(32);
  const file = `${dbPath}.face-secret`;
  try {
    // 'wx': the first process of a node (or of `serve --workers`) writes it; the others read it.
    writeFileSync(file, randomBytes(32).toString('base64url'), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8');
}

export interface Sessions {
  /** The Set-Cookie value that logs this token in until now + ttl. */
  issue(tokenId: string, nowMs: number): string;
  /** The principal of a valid, unexpired cookie whose token is still an unrevoked admin or auditor. */
  read(cookieHeader: string | undefined, nowMs: number): Promise<Principal | undefined>;
  /** The Set-Cookie value that logs out. */
  clear(): string;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function createSessions(deps: { secret: Buffer; ttlSeconds: number; secure: boolean; tokens: Pick<Tokens, 'get'> }): Sessions {
  const sign = (payload: string) => createHmac('sha256', deps.secret).update(payload).digest('base64url');
  const attrs = `Path=/; HttpOnly; SameSite=Strict${deps.secure ? '; Secure' : ''}`;
  return {
    issue(tokenId, nowMs) {
      const payload = Buffer.from(JSON.stringify({ t: tokenId, e: Math.floor(nowMs / 1000) + deps.ttlSeconds })).toString('base64url');
      return `${COOKIE}=${payload}.${sign(payload)}; Max-Age=${deps.ttlSeconds}; ${attrs}`;
    },
    async read(header, nowMs) {
      const value = cookieValue(header, COOKIE);
      if (value === undefined) return undefined;
      const dot = value.indexOf('.');
      if (dot < 0) return undefined;
      const payload = value.slice(0, dot);
      const given = Buffer.from(value.slice(dot + 1));
      const want = Buffer.from(sign(payload));
      if (given.length !== want.length || !timingSafeEqual(given, want)) return undefined;
      let claims: { t?: unknown; e?: unknown };
      try {
        claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
      } catch {
        return undefined;
      }
      if (typeof claims.t !== 'string' || typeof claims.e !== 'number' || claims.e * 1000 <= nowMs) return undefined;
      const token = await deps.tokens.get(claims.t);
      if (token === undefined || token.revokedAt !== null || (token.role !== 'admin' && token.role !== 'auditor')) return undefined;
      return { id: token.id, role: token.role, prefixes: token.prefixes, actor: `${token.id} (page)` };
    },
    clear: () => `${COOKIE}=; Max-Age=0; ${attrs}`,
  };
}
