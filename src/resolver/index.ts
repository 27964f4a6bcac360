/**
 * The only place that caches: cache → store (→ upstream, later). The cache holds answers
 * serialised once, with their headers, so a hit is a map lookup and a socket write.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { IdnError } from '../errors.js';
import type { Identifier } from '../identifier/index.js';
import type { Prefixes } from '../registry/prefixes.js';
import { type HandleValue, ttlSeconds } from '../registry/values.js';
import type { Store } from '../store/index.js';
import type { Router } from '../upstream/routing.js';

/** Cap on any cache lifetime we advertise or keep (Handle.Net's). */
export const MAX_TTL_SECONDS = 172800;

export const CACHE_STATUS = {
  hit: 'idnode; hit',
  stored: 'idnode; fwd=uri-miss; stored',
  bypass: 'idnode; fwd=bypass',
  uncacheable: 'idnode; fwd=uri-miss',
} as const;

/** One ready-to-send answer. */
export interface Entry {
  status: number;
  handle: string;
  body: Buffer;
  etag: string | undefined;
  /** Cache-Control max-age, seconds; undefined for error answers. */
  maxAge: number | undefined;
  /** Raw header list for a cache hit (node:http writeHead form). */
  hitHeaders: string[];
  /** True when this is the public view of a record that also has non-public values. */
  partial: boolean;
  /** Parsed values, filled on first filtered request. */
  values?: HandleValue[];
}

export interface Resolution {
  entry: Entry;
  cacheStatus: string;
}

export interface Resolver {
  /** The cached answer for a normalised identifier, if any (updates recency). */
  cached(key: string): Entry | undefined;
  resolve(id: Identifier, opts: { bypassCache: boolean; privateAccess: boolean }): Promise<Resolution>;
  invalidate(key: string): void;
  clear(): void;
  stats(): { entries: number; bytes: number; maxBytes: number };
}

function etagOf(body: Buffer): string {
  return `"${createHash('sha1').update(body).digest('base64url')}"`;
}

export function buildEntry(status: number, handle: string, body: Buffer, maxAge: number | undefined): Entry {
  const etag = status === 200 ? etagOf(body) : undefined;
  const hitHeaders = ['content-type', 'application/json; charset=utf-8', 'content-length', String(body.length)];
  if (etag !== undefined) hitHeaders.push('etag', etag);
  if (maxAge !== undefined) hitHeaders.push('cache-control', `max-age=${maxAge}`);
  hitHeaders.push('cache-status', CACHE_STATUS.hit);
  return { status, handle, body, etag, maxAge, hitHeaders, partial: false };
}

export function smallestTtl(values: HandleValue[], nowMs: number): number {
  let min = MAX_TTL_SECONDS;
  for (const v of values) min = Math.min(min, ttlSeconds(v, nowMs));
  return values.length === 0 ? 0 : min;
}

/** Builds the 200 answer from a stored value list (already JSON). */
export function answerEntry(handle: string, valuesJson: string, nowMs: number): Entry {
  const values = JSON.parse(valuesJson) as HandleValue[];
  const body = Buffer.from(`{"responseCode":1,"handle":${JSON.stringify(handle)},"values":${valuesJson}}`);
  const entry = buildEntry(200, handle, body, smallestTtl(values, nowMs));
  entry.values = values;
  return entry;
}

/** Values of an entry, parsed once. */
export function entryValues(entry: Entry): HandleValue[] {
  if (entry.values === undefined) entry.values = (JSON.parse(entry.body.toString('utf8')) as { values?: HandleValue[] }).values ?? [];
  return entry.values;
}

export function createResolver(deps: {
  store: Store;
  router: Router;
  prefixes: Prefixes;
  cacheMaxBytes: number;
  notFoundTtlSeconds: number;
  now?: () => number;
}): Resolver {
  const now = deps.now ?? Date.now;
  const maxBytes = Math.max(deps.cacheMaxBytes, 1);
  // An entry costs its body plus key and bookkeeping (~300 bytes measured for lru-cache + Entry).
  const cache = new LRUCache<string, Entry>({
    maxSize: maxBytes,
    sizeCalculation: (e, key) => e.body.length + key.length * 2 + 300,
    ttlAutopurge: false,
    perf: { now },
  });
  const enabled = deps.cacheMaxBytes > 0;

  function notFound(id: Identifier): Entry {
    const err = new IdnError('IDN_NOT_FOUND', `${id.text} is not registered`, { handle: id.text });
    return buildEntry(404, id.text, Buffer.from(JSON.stringify(err.toBody())), undefined);
  }

  function store(key: string, entry: Entry, ttlSeconds?: number): void {
    if (!enabled) return;
    if (ttlSeconds !== undefined) cache.set(key, entry, { ttl: ttlSeconds * 1000 });
    else cache.set(key, entry);
  }

  function notResponsible(id: Identifier, prefixKey: string): IdnError {
    return new IdnError('IDN_NOT_RESPONSIBLE', `this node does not home prefix ${prefixKey} and has no upstream to ask`, { handle: id.text });
  }

  function local(id: Identifier, privateAccess: boolean): { entry: Entry; cacheable: boolean } {
    const nowMs = now();
    if (id.namedPrefixKey !== undefined) {
      const rec = deps.prefixes.prefixRecord(id.namedPrefixKey);
      if (rec === undefined) return { entry: notFound(id), cacheable: true };
      return { entry: answerEntry(rec.handle, JSON.stringify(rec.values), nowMs), cacheable: true };
    }
    const row = deps.store.getRecord(id.key);
    if (row === undefined) return { entry: notFound(id), cacheable: true };
    if (row.publicJson === null) return { entry: answerEntry(row.handle, row.valuesJson, nowMs), cacheable: true };
    if (privateAccess) return { entry: answerEntry(row.handle, row.valuesJson, nowMs), cacheable: false };
    const entry = answerEntry(row.handle, row.publicJson, nowMs);
    entry.partial = true;
    return { entry, cacheable: true };
  }

  return {
    cached: (key) => (enabled ? cache.get(key) : undefined),
    async resolve(id, opts) {
      if (!opts.bypassCache) {
        const hit = enabled ? cache.get(id.key) : undefined;
        // A private reader needs the full record, which is never cached.
        if (hit !== undefined && !(opts.privateAccess && hit.partial))
          return { entry: hit, cacheStatus: CACHE_STATUS.hit };
      }
      const routeKey = id.namedPrefixKey ?? id.prefixKey;
      const route = deps.router.route(routeKey);
      const knownPrefix = id.namedPrefixKey !== undefined && deps.prefixes.prefixRecord(id.namedPrefixKey) !== undefined;
      if (route.kind !== 'local' && !knownPrefix) {
        if (route.kind === 'none') throw notResponsible(id, routeKey);
        throw new IdnError('IDN_NOT_RESPONSIBLE', `prefix ${routeKey} is served by ${route.kind === 'delegated' ? route.site : route.url}; ask that node`, {
          handle: id.text,
        });
      }
      const { entry, cacheable } = local(id, opts.privateAccess);
      if (cacheable) store(id.key, entry, entry.status === 200 ? undefined : deps.notFoundTtlSeconds);
      return { entry, cacheStatus: opts.bypassCache ? CACHE_STATUS.bypass : cacheable && enabled ? CACHE_STATUS.stored : CACHE_STATUS.uncacheable };
    },
    invalidate: (key) => void cache.delete(key),
    clear: () => cache.clear(),
    stats: () => ({ entries: cache.size, bytes: cache.calculatedSize, maxBytes }),
  };
}
