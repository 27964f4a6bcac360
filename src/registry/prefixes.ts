/** Enterprise prefixes under the homed ones: hosted here or delegated to another node's site. */
import { randomUUID } from 'node:crypto';
import { IdnError } from '../errors.js';
import { foldCase, isUnderPrefix, parentPrefix, parsePrefix, prefixChain } from '../identifier/index.js';
import type { PrefixRow, Store, WriteTx } from '../store/index.js';
import type { Router } from '../upstream/routing.js';
import type { HandleValue } from './values.js';

export type PrefixStatus = PrefixRow['status'];
export const STATUSES: PrefixStatus[] = ['pending', 'active', 'suspended'];

export interface PrefixInfo {
  prefix: string;
  owner: Record<string, unknown>;
  site?: string;
  status: PrefixStatus;
  parent: string | null;
  homed?: true;
  /** Short URLs under the prefix redirect (true) or show the page (false); absent: inherited. */
  redirect?: boolean;
}

export interface Prefixes {
  create(input: Record<string, unknown>, actor: string): Promise<PrefixInfo>;
  get(prefix: string): Promise<PrefixInfo>;
  list(parent?: string): Promise<PrefixInfo[]>;
  patch(prefix: string, input: Record<string, unknown>, actor: string): Promise<PrefixInfo>;
  remove(prefix: string, actor: string): Promise<PrefixInfo>;
  /** The upstream accepted this prefix: a pending prefix becomes active. */
  accept(prefix: string): Promise<void>;
  /** The `0.NA/<prefix>` record when this node knows the prefix, else undefined. */
  prefixRecord(prefixKey: string): Promise<{ handle: string; values: HandleValue[] } | undefined>;
}

/** What a node reports to its upstream about a prefix it created or changed. */
async function report(tx: WriteTx, row: PrefixRow, event: 'created' | 'changed' | 'deleted'): Promise<void> {
  const body = {
    kind: 'prefix',
    event,
    prefix: row.prefix,
    owner: JSON.parse(row.ownerJson) as unknown,
    status: row.status,
    ...(row.site !== null ? { site: row.site } : {}),
  };
  await tx.enqueueReport('prefix', `prefix:${row.prefixKey}:${randomUUID()}`, JSON.stringify(body));
}

function infoOf(row: PrefixRow): PrefixInfo {
  const out: PrefixInfo = { prefix: row.prefix, owner: JSON.parse(row.ownerJson) as Record<string, unknown>, status: row.status, parent: row.parentKey };
  if (row.site !== null) out.site = row.site;
  if (row.redirect != null) out.redirect = row.redirect;
  return out;
}

/** The audit payload of a prefix write; redirect is appended only when set, so older entries keep their shape. */
function prefixPayload(row: PrefixRow): string {
  const fields: unknown[] = [row.prefix, row.ownerJson, row.site, row.status];
  if (row.redirect != null) fields.push(row.redirect);
  return JSON.stringify(fields);
}

/**
 * Whether short URLs of an identifier redirect (the Handle proxy) or show the page: the
 * nearest registered prefix (itself first, then its ancestors) that sets `redirect` wins,
 * else the node's face.redirect. `registered` is the router's chain, longest first.
 */
export function redirectSetting(registered: readonly PrefixRow[], nodeDefault: boolean): boolean {
  for (const p of registered) if (p.redirect != null) return p.redirect;
  return nodeDefault;
}

const invalid = (message: string) => new IdnError('IDN_INVALID_VALUE', message);

function checkOwner(owner: unknown): Record<string, unknown> {
  if (typeof owner !== 'object' || owner === null || Array.isArray(owner)) throw invalid('owner must be an object such as {"name": "Acme Engines Co."}');
  const name = (owner as Record<string, unknown>).name;
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200) throw invalid('owner.name must be a non-empty string of at most 200 characters');
  return owner as Record<string, unknown>;
}

function checkSite(site: unknown): string {
  if (typeof site !== 'string') throw invalid('site must be the base URL of the node that serves the prefix, such as "http://127.0.0.1:8002"');
  try {
    const u = new URL(site);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
  } catch {
    throw invalid(`site must be an http(s) base URL such as "http://127.0.0.1:8002"; got ${JSON.stringify(site)}`);
  }
  return site.replace(/\/+$/, '');
}

function checkRedirect(redirect: unknown, nullable: boolean): boolean | null {
  if (typeof redirect === 'boolean' || (nullable && redirect === null)) return redirect;
  throw invalid(
    `redirect must be true or false${nullable ? ', or null to inherit the setting of the parent prefix or node' : ''}; got ${JSON.stringify(redirect)}`,
  );
}

/** Fields a GET answers that a PATCH cannot change: accepted and ignored. */
const READ_ONLY = ['prefix', 'parent', 'homed'];

function checkKeys(input: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(input)) if (!allowed.includes(k)) throw invalid(`unknown field "${k}"; allowed: ${allowed.join(', ')}`);
}

export function siteValue(baseUrl: string, desc: string, at: string): HandleValue {
  return {
    index: 1,
    type: 'HS_SITE',
    data: {
      format: 'site',
      value: {
        version: 1,
        protocolVersion: '2.10',
        serialNumber: 1,
        primaryMask: { multiPrimary: false, primary: true },
        hashOption: 0,
        attributes: [
          { name: 'baseUrl', value: baseUrl },
          { name: 'desc', value: desc },
        ],
        servers: [],
      },
    },
    ttl: 86400,
    timestamp: at,
  };
}

export function createPrefixes(deps: { store: Store; router: Router; homed: string[]; baseUrl: string; hasUpstream: boolean; startedAt: string }): Prefixes {
  const { store, router } = deps;
  const homedByKey = new Map(deps.homed.map((h) => [foldCase(h), h]));

  function parse(prefix: unknown): { prefix: string; key: string } {
    if (typeof prefix !== 'string') throw invalid('prefix must be a string such as "88.100.7"');
    try {
      return parsePrefix(prefix);
    } catch (err) {
      throw invalid(`prefix: ${(err as Error).message}`);
    }
  }

  async function existing(prefix: string): Promise<PrefixRow> {
    const { key } = parsePrefix(prefix);
    const row = await store.getPrefix(key);
    if (row === undefined) throw new IdnError('IDN_PREFIX_NOT_FOUND', `prefix ${prefix} is not registered on this node; list them with GET /api/prefixes`);
    return row;
  }

  async function delegatedAncestor(key: string): Promise<PrefixRow | undefined> {
    for (const p of prefixChain(key).slice(1)) {
      const row = await store.getPrefix(p);
      if (row?.site != null) return row;
    }
    return undefined;
  }

  return {
    async create(input, actor) {
      checkKeys(input, ['prefix', 'owner', 'site', 'redirect']);
      const { prefix, key } = parse(input.prefix);
      const homedKey = router.homedAncestor(key);
      if (homedKey === undefined || homedKey === key)
        throw new IdnError(
          'IDN_NOT_RESPONSIBLE',
          `${prefix} is not under a prefix this node homes (${router.homed().join(', ')}); create it on its parent node`,
        );
      const owner = checkOwner(input.owner);
      const site = input.site === undefined ? null : checkSite(input.site);
      const redirect = input.redirect === undefined ? null : checkRedirect(input.redirect, false);
      const under = await delegatedAncestor(key);
      if (under !== undefined)
        throw new IdnError('IDN_NOT_RESPONSIBLE', `${prefix} lies under ${under.prefix}, which is delegated to ${under.site}; create it on that node`);
      if (site !== null && (await store.countRecordsUnder(key)) > 0)
        throw new IdnError('IDN_PREFIX_NOT_EMPTY', `identifiers under ${prefix} are stored here; delete them before delegating the prefix to ${site}`);
      const row = await store.write({ actor, action: 'prefix.create', target: prefix }, async (tx) => {
        if ((await tx.getPrefix(key)) !== undefined)
          throw new IdnError('IDN_PREFIX_EXISTS', `prefix ${prefix} already exists; change it with PATCH /api/prefixes/${prefix}`);
        const row: PrefixRow = {
          prefixKey: key,
          prefix,
          parentKey: parentPrefix(key)!,
          ownerJson: JSON.stringify(owner),
          site,
          status: deps.hasUpstream ? 'pending' : 'active',
          createdAt: tx.at,
          updatedAt: tx.at,
          redirect,
        };
        await tx.putPrefix(row);
        if (deps.hasUpstream) await report(tx, row, 'created');
        return { result: row, payload: prefixPayload(row), keepPayload: true };
      });
      return infoOf(row);
    },

    async get(prefix) {
      const { key } = parse(prefix);
      const homed = homedByKey.get(key);
      if (homed !== undefined) return { prefix: homed, owner: {}, status: 'active', parent: parentPrefix(key) ?? null, homed: true };
      return infoOf(await existing(prefix));
    },

    async list(parent) {
      const rows = await store.allPrefixes();
      if (parent === undefined) return rows.map(infoOf);
      const { key } = parse(parent);
      return rows.filter((r) => r.parentKey === key).map(infoOf);
    },

    async patch(prefix, input, actor) {
      // The read-only fields of a GET answer may come back with it (GET → edit → PATCH); a typo is still refused.
      checkKeys(input, ['owner', 'site', 'status', 'redirect', ...READ_ONLY]);
      const row = await existing(prefix);
      if (input.prefix !== undefined && (typeof input.prefix !== 'string' || input.prefix.toLowerCase() !== row.prefix.toLowerCase()))
        throw invalid(`the body names prefix ${JSON.stringify(input.prefix)} but the URL names ${row.prefix}; leave "prefix" out or make them match`);
      const next: PrefixRow = { ...row };
      if (input.owner !== undefined) next.ownerJson = JSON.stringify(checkOwner(input.owner));
      if (input.site !== undefined) next.site = input.site === null ? null : checkSite(input.site);
      if (input.status !== undefined) {
        if (typeof input.status !== 'string' || !STATUSES.includes(input.status as PrefixStatus)) throw invalid(`status must be one of ${STATUSES.join(', ')}`);
        next.status = input.status as PrefixStatus;
      }
      if (input.redirect !== undefined) next.redirect = checkRedirect(input.redirect, true);
      if (next.site !== null && row.site === null && (await store.countRecordsUnder(row.prefixKey)) > 0)
        throw new IdnError('IDN_PREFIX_NOT_EMPTY', `identifiers under ${row.prefix} are stored here; delete them before delegating the prefix`);
      const out = await store.write({ actor, action: 'prefix.update', target: row.prefix }, async (tx) => {
        next.updatedAt = tx.at;
        await tx.putPrefix(next);
        // A pending prefix waits for the upstream: report changes only once it has been accepted.
        if (deps.hasUpstream && row.status !== 'pending') await report(tx, next, 'changed');
        return { result: next, payload: prefixPayload(next), keepPayload: true };
      });
      return infoOf(out);
    },

    async remove(prefix, actor) {
      const row = await existing(prefix);
      const records = await store.countRecordsUnder(row.prefixKey);
      if (records > 0) throw new IdnError('IDN_PREFIX_NOT_EMPTY', `prefix ${row.prefix} still holds ${records} identifiers; delete them first`);
      const children = (await store.allPrefixes()).filter((p) => p.prefixKey !== row.prefixKey && isUnderPrefix(p.prefixKey, row.prefixKey));
      if (children.length > 0)
        throw new IdnError('IDN_PREFIX_NOT_EMPTY', `prefix ${row.prefix} has child prefixes (${children.map((c) => c.prefix).join(', ')}); delete them first`);
      await store.write({ actor, action: 'prefix.delete', target: row.prefix }, async (tx) => {
        await tx.deletePrefix(row.prefixKey);
        return { result: undefined, payload: row.prefix, keepPayload: true };
      });
      return infoOf(row);
    },

    async accept(prefix) {
      const row = await store.getPrefix(parsePrefix(prefix).key);
      if (row === undefined || row.status !== 'pending') return;
      await store.write({ actor: 'sync (upstream accepted)', action: 'prefix.update', target: row.prefix }, async (tx) => {
        const next: PrefixRow = { ...row, status: 'active', updatedAt: tx.at };
        await tx.putPrefix(next);
        return { result: undefined, payload: prefixPayload(next), keepPayload: true };
      });
    },

    async prefixRecord(prefixKey) {
      const homed = homedByKey.get(prefixKey);
      if (homed !== undefined) return { handle: `0.NA/${homed}`, values: [siteValue(deps.baseUrl, `homed by this node`, deps.startedAt)] };
      const row = await store.getPrefix(prefixKey);
      if (row === undefined) return undefined;
      const owner = JSON.parse(row.ownerJson) as { name: string };
      return {
        handle: `0.NA/${row.prefix}`,
        values: [
          siteValue(row.site ?? deps.baseUrl, owner.name, row.updatedAt),
          { index: 2, type: 'HS_STATUS', data: { format: 'string', value: row.status }, ttl: 86400, timestamp: row.updatedAt },
        ],
      };
    },
  };
}
