/**
 * The one authorizer: every permission idnode grants is decided by `authorize(principal,
 * action, prefix?)`, from the token's role and prefixes and the status of the prefixes on
 * the way to the one a request names. Routing (is the prefix homed here?) is decided before,
 * by the caller, as the contract orders it: syntax → routing → authentication → scope.
 */
import { IdnError } from '../errors.js';
import { type Identifier, isUnderPrefix } from '../identifier/index.js';
import type { Route } from '../upstream/routing.js';
import type { Principal } from './tokens.js';

export const ACTIONS = [
  /** PUT/DELETE a record, bulk lines, CLI import (registrar in scope while its prefixes are active; admin). */
  'record.write',
  /** Non-public values and listing under a prefix (admin; registrar or auditor in scope; unscoped auditor). */
  'record.readPrivate',
  /** Define a metadata template (as record.write). */
  'template.write',
  /** Post a lineage event; with a prefix, each local identifier it names (admin; registrar in scope). */
  'event.write',
  /** Lineage and history of an identifier (admin; auditor scoped to it, or unscoped). */
  'lineage.read',
  /** The whole audit log and its verification (admin; unscoped auditor). */
  'audit.read',
  'prefix.admin',
  'token.admin',
  /** Sync reports received and this node's outbox. */
  'sync.admin',
  /** A child node's sync report (role node; the receiver checks the prefix is in its delegation). */
  'sync.report',
] as const;
export type Action = (typeof ACTIONS)[number];

/** The prefix a permission is asked for. */
export interface PrefixTarget {
  /** Normalised prefix key. */
  key: string;
  /** The identifier the request names: echoed as `handle` in the error; events name it in the message. */
  handle?: string | undefined;
  /** The prefix as that identifier spells it (events' message). */
  spelled?: string | undefined;
  /** The registered prefixes from the homed one down to `key` (route.registered): writes need each `active`. */
  registered?: readonly { prefix: string; status: 'pending' | 'active' | 'suspended' }[];
}

const READERS = 'history, lineage and the audit log are read with an auditor or admin token';

const inScope = (p: Principal, key: string) => p.prefixes.some((s) => isUnderPrefix(key, s));
const scopedTo = (p: Principal) => (p.prefixes.length ? `; it is scoped to ${p.prefixes.join(', ')}` : '');
const forbidden = (message: string, handle?: string) => new IdnError('IDN_FORBIDDEN', message, { handle });

function needsPrefix(action: Action, prefix: PrefixTarget | undefined): PrefixTarget {
  if (prefix === undefined) throw new Error(`authorize: ${action} needs the prefix it applies to`);
  return prefix;
}

/** The refusal for `principal` doing `action` (on `prefix`), or undefined when it is allowed. */
export function refusal(principal: Principal | undefined, action: Action, prefix?: PrefixTarget): IdnError | undefined {
  if (principal === undefined)
    return new IdnError('IDN_AUTH_REQUIRED', 'this request needs a token: send "Authorization: Bearer <token>"', { handle: prefix?.handle });
  const p = principal;
  switch (action) {
    case 'prefix.admin':
    case 'token.admin':
    case 'sync.admin':
      return p.role === 'admin' ? undefined : forbidden(`this needs an admin token; token ${p.id} has role ${p.role}`);
    case 'sync.report':
      return p.role === 'node' ? undefined : forbidden(`sync reports are sent with a token of role node; token ${p.id} has role ${p.role}`);
    case 'record.write':
    case 'template.write': {
      const t = needsPrefix(action, prefix);
      if (!(p.role === 'admin' || (p.role === 'registrar' && inScope(p, t.key))))
        return forbidden(`token ${p.id} (role ${p.role}) may not write under prefix ${t.key}${scopedTo(p)}`, t.handle);
      const inactive = t.registered?.find((r) => r.status !== 'active');
      if (inactive !== undefined)
        return new IdnError(
          'IDN_PREFIX_NOT_ACTIVE',
          `prefix ${inactive.prefix} is ${inactive.status}${inactive.status === 'pending' ? ' (waiting for the upstream node to accept it)' : ''}; registrations open when it is active`,
          { handle: t.handle },
        );
      return undefined;
    }
    case 'record.readPrivate': {
      const t = needsPrefix(action, prefix);
      const ok =
        p.role === 'admin' || (p.role === 'auditor' && p.prefixes.length === 0) || ((p.role === 'auditor' || p.role === 'registrar') && inScope(p, t.key));
      return ok ? undefined : forbidden(`token ${p.id} (role ${p.role}) may not read under prefix ${t.key}${scopedTo(p)}`, t.handle);
    }
    case 'event.write':
      if (p.role !== 'admin' && p.role !== 'registrar') return forbidden(`events are posted with a registrar or admin token; token ${p.id} has role ${p.role}`);
      if (prefix === undefined || p.role === 'admin' || inScope(p, prefix.key)) return undefined;
      return forbidden(
        `token ${p.id} may not write under ${prefix.spelled ?? prefix.key} (it names ${prefix.handle ?? prefix.key}); it is scoped to ${p.prefixes.join(', ')}`,
        prefix.handle,
      );
    case 'lineage.read': {
      const t = needsPrefix(action, prefix);
      if (p.role === 'admin') return undefined;
      if (p.role !== 'auditor') return forbidden(`${READERS}; token ${p.id} has role ${p.role}`);
      return p.prefixes.length === 0 || inScope(p, t.key) ? undefined : forbidden(`token ${p.id} is scoped to ${p.prefixes.join(', ')}, not to ${t.key}`);
    }
    case 'audit.read':
      if (p.role === 'admin') return undefined;
      if (p.role !== 'auditor') return forbidden(`${READERS}; token ${p.id} has role ${p.role}`);
      return p.prefixes.length === 0
        ? undefined
        : forbidden(`the audit log covers every prefix; token ${p.id} is scoped to ${p.prefixes.join(', ')}, so it needs an unscoped auditor or admin token`);
  }
}

/**
 * The principal when it may do `action` (on `prefix`); otherwise throws 401 (no token),
 * 403 IDN_FORBIDDEN (role or scope) or 403 IDN_PREFIX_NOT_ACTIVE (a write under a prefix
 * that is pending or suspended).
 */
export function authorize(principal: Principal | undefined, action: Action, prefix?: PrefixTarget): Principal {
  const refused = refusal(principal, action, prefix);
  if (refused !== undefined) throw refused;
  return principal!;
}

/** The same decision as a boolean, for what is granted silently (non-public values in an answer). */
export function allows(principal: Principal | undefined, action: Action, prefix?: PrefixTarget): boolean {
  // Anonymous requests are most of them: no refusal (an Error with its stack) is built for them.
  return principal !== undefined && refusal(principal, action, prefix) === undefined;
}

/**
 * What a write to `id` is checked against, after what comes before the token in the
 * contract's order: a prefix handle is never written here (403), and the prefix must be
 * homed here (400/301 naming where to write instead).
 */
export function writeTarget(route: Route, id: Identifier): PrefixTarget {
  if (id.namedPrefixKey !== undefined)
    throw new IdnError('IDN_FORBIDDEN', `${id.text} is a prefix handle; manage prefixes through /api/prefixes`, { handle: id.text });
  if (route.kind !== 'local')
    throw new IdnError(
      'IDN_NOT_RESPONSIBLE',
      route.kind === 'delegated'
        ? `prefix ${id.prefix} is delegated to ${route.site}; write there`
        : `this node does not home prefix ${id.prefix}; write to the node that does`,
      { handle: id.text },
    );
  return { key: id.prefixKey, handle: id.text, registered: route.registered };
}
