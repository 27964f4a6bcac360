/**
 * Tokens: created with a random secret shown once, stored only as SHA-256, looked up by
 * that hash and compared with timingSafeEqual. Sent as `Bearer <secret>` or, as Handle
 * clients do, HTTP Basic with user `<index>:<handle>` (percent-encoded) and the secret.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { IdnError } from '../errors.js';
import { parsePrefix } from '../identifier/index.js';
import type { Store, TokenRow } from '../store/index.js';

export const ROLES = ['admin', 'registrar', 'auditor', 'node'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  id: string;
  role: Role;
  /** Normalised prefixes the token is scoped to (empty for admin; empty auditor = all). */
  prefixes: string[];
  /** Who the audit log names: the token id, plus the Basic-auth user when one was sent. */
  actor: string;
}

export interface TokenInfo {
  id: string;
  role: Role;
  prefixes: string[];
  label: string | null;
  createdAt: string;
  revokedAt: string | null;
}

export interface Tokens {
  create(input: { role: unknown; prefixes?: unknown; label?: unknown }, actor: string, secret?: string): Promise<TokenInfo & { secret: string }>;
  list(): Promise<TokenInfo[]>;
  /** One token by id (revoked ones included); undefined when there is none. */
  get(id: string): Promise<TokenInfo | undefined>;
  revoke(id: string, actor: string): Promise<TokenInfo>;
  /** undefined when no credentials were sent; throws IDN_AUTH_FAILED for bad ones. */
  authenticate(authorization: string | undefined): Promise<Principal | undefined>;
  /**
   * True for a valid, unrevoked admin token; never throws (the shedder asks this under
   * overload, synchronously: false on an engine without synchronous token reads).
   */
  isAdmin(authorization: string | undefined): boolean;
  /** Creates an admin token with this secret when the node has no active admin token. */
  bootstrapAdmin(secret: string): Promise<TokenInfo | undefined>;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function info(row: TokenRow): TokenInfo {
  return {
    id: row.id,
    role: row.role,
    prefixes: JSON.parse(row.prefixesJson) as string[],
    label: row.label,
    createdAt: row.createdAt,
    revokedAt: row.revokedAt,
  };
}

const authFailed = (why: string) => new IdnError('IDN_AUTH_FAILED', why);

export function createTokens(deps: { store: Store; homedAncestor: (prefixKey: string) => string | undefined }): Tokens {
  const { store } = deps;

  async function create(input: { role: unknown; prefixes?: unknown; label?: unknown }, actor: string, secret?: string) {
    const role = input.role;
    if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role))
      throw new IdnError('IDN_INVALID_VALUE', `role must be one of ${ROLES.join(', ')}; got ${JSON.stringify(role)}`);
    const rawPrefixes = input.prefixes ?? [];
    if (!Array.isArray(rawPrefixes) || rawPrefixes.some((p) => typeof p !== 'string'))
      throw new IdnError('IDN_INVALID_VALUE', 'prefixes must be a list of prefix strings such as ["88.100.7"]');
    const prefixes = (rawPrefixes as string[]).map((p) => {
      let key: string;
      try {
        key = parsePrefix(p).key;
      } catch (err) {
        throw new IdnError('IDN_INVALID_VALUE', `prefixes: ${(err as Error).message}`);
      }
      if (role !== 'node' && deps.homedAncestor(key) === undefined)
        throw new IdnError('IDN_INVALID_VALUE', `prefixes: ${p} is not under a prefix this node homes, so the token could not use it`);
      return key;
    });
    if ((role === 'registrar' || role === 'node') && prefixes.length === 0)
      throw new IdnError('IDN_INVALID_VALUE', `a ${role} token needs at least one prefix in "prefixes"`);
    if (role === 'admin' && prefixes.length > 0) throw new IdnError('IDN_INVALID_VALUE', 'an admin token covers every homed prefix; leave "prefixes" out');
    if (input.label !== undefined && (typeof input.label !== 'string' || input.label.length > 200))
      throw new IdnError('IDN_INVALID_VALUE', 'label must be a string of at most 200 characters');
    const id = `tok_${randomBytes(8).toString('hex')}`;
    const plain = secret ?? `idn_${randomBytes(32).toString('base64url')}`;
    const row = await store.write({ actor, action: 'token.create', target: id }, async (tx) => {
      const row: TokenRow = {
        id,
        role: role as Role,
        prefixesJson: JSON.stringify(prefixes),
        secretHash: hashSecret(plain),
        label: (input.label as string | undefined) ?? null,
        createdAt: tx.at,
        revokedAt: null,
      };
      await tx.insertToken(row);
      // The digest covers the token's identity and scope, never the secret or its hash.
      return { result: row, payload: JSON.stringify([id, role, prefixes, row.label]), keepPayload: true };
    });
    return { ...info(row), secret: plain };
  }

  /** The secret and Basic-auth user of an Authorization header, or why it cannot carry a token. */
  function credentials(authorization: string): { secret: string; user: string | undefined } | string {
    const space = authorization.indexOf(' ');
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
    const cred = space < 0 ? '' : authorization.slice(space + 1).trim();
    let secret: string;
    let user: string | undefined;
    if (scheme === 'bearer') {
      secret = cred;
    } else if (scheme === 'basic') {
      const decoded = Buffer.from(cred, 'base64').toString('utf8');
      const colon = decoded.lastIndexOf(':');
      if (colon < 0) return 'HTTP Basic credentials must be "<index>:<handle>:<token secret>" in base64';
      secret = decoded.slice(colon + 1);
      user = decoded.slice(0, colon);
    } else {
      return `unsupported Authorization scheme "${scheme}"; send "Bearer <token>" or HTTP Basic`;
    }
    if (secret === '') return 'the Authorization header carries an empty token';
    return { secret, user };
  }

  /** The token row of a secret; the lookup is by hash, so timing reveals nothing of the secret; compare anyway. */
  function checked(row: TokenRow | undefined, hash: string): TokenRow | undefined {
    return row !== undefined && timingSafeEqual(Buffer.from(row.secretHash), Buffer.from(hash)) ? row : undefined;
  }

  async function rowOf(secret: string): Promise<TokenRow | undefined> {
    const hash = hashSecret(secret);
    return checked(await store.tokenByHash(hash), hash);
  }

  async function authenticate(authorization: string | undefined): Promise<Principal | undefined> {
    if (authorization === undefined || authorization === '') return undefined;
    const c = credentials(authorization);
    if (typeof c === 'string') throw authFailed(c);
    const row = await rowOf(c.secret);
    if (row === undefined) throw authFailed('the token is not known to this node; check the secret or ask an admin for a new token');
    if (row.revokedAt !== null) throw authFailed(`token ${row.id} was revoked at ${row.revokedAt}`);
    let user = c.user;
    if (user !== undefined) {
      try {
        user = decodeURIComponent(user);
      } catch {
        // Not percent-encoded after all: the label keeps the raw text.
      }
    }
    return {
      id: row.id,
      role: row.role,
      prefixes: JSON.parse(row.prefixesJson) as string[],
      actor: user === undefined ? row.id : `${row.id} (${user})`,
    };
  }

  // Read from the store on every call, never cached: `idnode token revoke` and other workers revoke through the SQLite file.
  const tokenByHashSync = store.tokenByHashSync;
  function isAdmin(authorization: string | undefined): boolean {
    if (authorization === undefined || authorization === '' || tokenByHashSync === undefined) return false;
    const c = credentials(authorization);
    if (typeof c === 'string') return false;
    const hash = hashSecret(c.secret);
    const row = checked(tokenByHashSync(hash), hash);
    return row !== undefined && row.revokedAt === null && row.role === 'admin';
  }

  return {
    create,
    authenticate,
    isAdmin,
    list: async () => (await store.listTokens()).map(info),
    async get(id) {
      const row = await store.tokenById(id);
      return row === undefined ? undefined : info(row);
    },
    async revoke(id, actor) {
      const row = await store.tokenById(id);
      if (row === undefined) throw new IdnError('IDN_TOKEN_NOT_FOUND', `no token with id ${id}; list them with GET /api/tokens`);
      if (row.revokedAt === null)
        await store.write({ actor, action: 'token.revoke', target: id }, async (tx) => {
          await tx.revokeToken(id);
          return { result: undefined, payload: id, keepPayload: true };
        });
      return info((await store.tokenById(id))!);
    },
    async bootstrapAdmin(secret) {
      if ((await store.activeAdminCount()) > 0) return undefined;
      const existing = await store.tokenByHash(hashSecret(secret));
      if (existing !== undefined) return undefined;
      const { secret: _s, ...rest } = await create({ role: 'admin', label: 'IDNODE_ADMIN_TOKEN' }, 'system', secret);
      return rest;
    },
  };
}
