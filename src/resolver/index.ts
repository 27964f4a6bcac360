/**
 * The only place that caches: cache → store (→ upstream, later). The cache holds answers
 * serialised once, with their headers, so a hit is a map lookup and a socket write. What it
 * holds is kept right by following the store's change feed (`createChangeFollower`).
 */
import { ERRORS, errorBody, IdnError, isIdnError } from '../errors.js';
import type { Identifier } from '../identifier/index.js';
import type { Prefixes } from '../registry/prefixes.js';
import { type HandleValue, relayedValuesProblem } from '../registry/values.js';
import type { AnswerRow, ChangeRow, RecordRow, Store } from '../store/index.js';
import type { UpstreamAnswer, UpstreamClient } from '../upstream/client.js';
import type { Router } from '../upstream/routing.js';
import { answerText, etagOf, MAX_TTL_SECONDS, maxAgeAt, smallestTtl } from '../registry/answer.js';
import { createAnswerCache } from './cache.js';
import { createKeyFilter, type KeyFilter, keyFilterBytes } from './keyfilter.js';

export { ENTRY_OVERHEAD_BYTES } from './cache.js';

export const CACHE_STATUS = {
  hit: 'idnode; hit',
  stored: 'idnode; fwd=uri-miss; stored',
  /** Read and not stored: the admission policy wants the key asked for again first (docs/API.md §3.1). */
  notAdmitted: 'idnode; fwd=uri-miss; detail=not-admitted',
  bypass: 'idnode; fwd=bypass',
  uncacheable: 'idnode; fwd=uri-miss',
} as const;

/** RFC 9211 entry for an expired answer served because the upstream failed. */
export function staleStatus(secondsPast: number): string {
  return `idnode; hit; ttl=-${secondsPast}; detail=stale`;
}

/** Upstream failures after which an expired cached answer may be served. */
const STALE_ON = new Set(['IDN_UPSTREAM_TIMEOUT', 'IDN_UPSTREAM_UNREACHABLE', 'IDN_UPSTREAM_BAD_ANSWER', 'IDN_UNAVAILABLE']);

/**
 * One ready-to-send answer. Kept small (a million of them must fit in about 1 KiB each
 * beyond their body): the body is a string (one byte per character for ASCII JSON; one
 * Buffer per entry would cost a typed-array object and a pool slot on top), headers are
 * built when sent, and the handle is read from the body when a filter needs it.
 */
export interface Entry {
  status: number;
  /** The JSON answer. */
  body: string;
  /** Its UTF-8 length (Content-Length). */
  bytes: number;
  etag: string | undefined;
  /** Cache-Control max-age, seconds; undefined for error answers. */
  maxAge: number | undefined;
  /** True when this is the public view of a record that also has non-public values. */
  partial: boolean;
  /** Forwarded and not-found answers: fresh until this time (ms); a forwarded one is kept after it, for serving stale. */
  freshUntil?: number;
  /** The admission sketch's hash of the entry's key (set when cached). */
  sketchHash?: number;
}

export interface Resolution {
  entry: Entry;
  cacheStatus: string;
  /** Where the answer came from (metrics). */
  source: 'cache' | 'store' | 'upstream';
}

export interface ResolveOptions {
  /** auth=true: answer from the authoritative store or upstream, never from the cache. */
  bypassCache: boolean;
  privateAccess: boolean;
  /** How many nodes forwarded this request already (IDN-Hop-Count; 0 from a client). */
  hops: number;
}

export interface Resolver {
  /** The fresh cached answer for a normalised identifier, if any (updates recency). */
  cached(key: string): Entry | undefined;
  resolve(id: Identifier, opts: ResolveOptions): Promise<Resolution>;
  /** A public cache miss answered here, synchronously; undefined when the identifier is not homed here or the engine reads only asynchronously. */
  resolveLocal(id: Identifier): Resolution | undefined;
  invalidate(key: string): void;
  /** Drops every answer for an identifier under `prefixKey`, and its prefix handle. */
  invalidateUnder(prefixKey: string): void;
  /** Drops every answer (the change feed was pruned past what this process saw); the key filter is rebuilt. */
  clear(): void;
  /** Starts (or restarts) filling the key filter from the store; resolves when it is ready or given up. */
  loadKeys(): Promise<void>;
  stats(): ResolverStats;
}

export interface ResolverStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  /** Answers served from the cache (fast path and fastify path). */
  hits: number;
  /** Lookups that had to go to the store or the upstream. */
  misses: number;
  /** Expired forwarded answers served because the upstream failed. */
  stale: number;
  /** Entries the LRU dropped for room. */
  evictions: number;
  /** Misses the admission policy did not store (src/resolver/cache.ts). */
  notAdmitted: number;
  /** The key filter: off (cache.keyFilterMaxBytes 0), building, ready, or tooLarge (more records than its bound holds). */
  keyFilter: KeyFilterState;
  /** Keys the filter holds (with repeats) and its bytes. */
  keyFilterKeys: number;
  keyFilterBytes: number;
  /** Fills of the key filter begun (at start, after a whole-cache drop, when it grew past its capacity). */
  keyFilterFills: number;
  /** Misses answered not-found by the key filter, without a database read. */
  filtered: number;
}

export type KeyFilterState = 'off' | 'building' | 'ready' | 'tooLarge';

/** Bits of `CachedAnswer.meta`: the status below, then `partial`, then max-age + 1 (0: none). */
const STATUS_MASK = 0x3ff;
const PARTIAL_BIT = 0x400;
const MAX_AGE_SHIFT = 11;
/** The largest max-age the packed field holds (MAX_TTL_SECONDS is 172,800): the field stays a small integer. */
const MAX_PACKED_AGE = 2 ** 19;

/**
 * An Entry as built here: status, `partial` and max-age in one small integer (three fields
 * cost 24 bytes of each of a million entries, one costs 8), read through accessors.
 */
class CachedAnswer implements Entry {
  body: string;
  bytes: number;
  etag: string | undefined;
  meta: number;
  freshUntil: number | undefined = undefined;
  sketchHash: number | undefined = undefined;

  /** `bytes`: the body's UTF-8 length when the caller knows it without encoding. */
  constructor(status: number, body: string, maxAge: number | undefined, etag: string | undefined, bytes = Buffer.byteLength(body)) {
    this.body = body;
    this.bytes = bytes;
    this.etag = etag;
    this.meta = (status & STATUS_MASK) | (maxAge === undefined ? 0 : (Math.min(Math.max(maxAge, 0), MAX_PACKED_AGE) + 1) << MAX_AGE_SHIFT);
  }

  get status(): number {
    return this.meta & STATUS_MASK;
  }

  get maxAge(): number | undefined {
    const m = this.meta >>> MAX_AGE_SHIFT;
    return m === 0 ? undefined : m - 1;
  }

  get partial(): boolean {
    return (this.meta & PARTIAL_BIT) !== 0;
  }

  set partial(p: boolean) {
    this.meta = p ? this.meta | PARTIAL_BIT : this.meta & ~PARTIAL_BIT;
  }
}

export function buildEntry(status: number, body: string, maxAge: number | undefined, knownEtag?: string): Entry {
  // Every field is set in the constructor, in one order: properties added later would cost each of a million entries a property store (39 bytes).
  return new CachedAnswer(status, body, maxAge, status === 200 ? (knownEtag ?? etagOf(body)) : undefined);
}

/**
 * Builds the 200 answer from a stored value list (already JSON). `meta` is what the write
 * path stored for the public view (schema v5); without it max-age and ETag are computed here.
 */
export function answerEntry(handle: string, valuesJson: string, nowMs: number, meta?: Pick<RecordRow, 'maxAge' | 'expiresAt' | 'etag'>): Entry {
  const body = answerText(handle, valuesJson);
  if (meta !== undefined && meta.maxAge !== null && meta.etag !== null)
    return buildEntry(200, body, maxAgeAt({ maxAge: meta.maxAge, expiresAt: meta.expiresAt }, nowMs), meta.etag);
  return buildEntry(200, body, smallestTtl(JSON.parse(valuesJson) as HandleValue[], nowMs));
}

/** Printable ASCII but the quote and the backslash: JSON.stringify leaves it as it is, one byte per character. */
const PLAIN_JSON = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const NOT_FOUND_HEAD = `{"responseCode":${ERRORS.IDN_NOT_FOUND.responseCode},"handle":"`;
const NOT_FOUND_MID = '","message":"';
const NOT_FOUND_TAIL = ' is not registered","code":"IDN_NOT_FOUND"}';
const NOT_FOUND_FIXED = NOT_FOUND_HEAD.length + NOT_FOUND_MID.length + NOT_FOUND_TAIL.length;

/**
 * The 404/100 answer for an identifier homed here that is not registered. A plain ASCII
 * identifier (nearly all) is spliced into the body's fixed parts, its length known without
 * encoding; anything else goes through JSON.stringify. No IdnError: capturing its stack cost
 * about 9 % of a not-found flood's CPU.
 */
export function notFoundEntry(text: string): Entry {
  if (PLAIN_JSON.test(text)) {
    // A CachedAnswer like every other entry: one shape for the code that reads them.
    return new CachedAnswer(404, NOT_FOUND_HEAD + text + NOT_FOUND_MID + text + NOT_FOUND_TAIL, undefined, undefined, NOT_FOUND_FIXED + 2 * text.length);
  }
  return buildEntry(404, JSON.stringify(errorBody('IDN_NOT_FOUND', `${text} is not registered`, text)), undefined);
}

const OPEN = '{"responseCode":';
const HANDLE_KEY = ',"handle":"';
const OK_OPEN = '{"responseCode":1,"handle":"';

/** The index of the quote that closes the JSON string opened at `open`, or -1. */
function stringEnd(body: string, open: number): number {
  for (let i = open + 1; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c === 92) i++;
    else if (c === 34) return i;
  }
  return -1;
}

const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;

/** After optional whitespace from `i`, the index of `code`, or -1. */
function next(body: string, i: number, code: number): number {
  while (isSpace(body.charCodeAt(i))) i++;
  return body.charCodeAt(i) === code ? i : -1;
}

/**
 * Where the JSON string of the top-level `handle` starts (its opening quote), or -1. An answer
 * built here starts `{"responseCode":N,"handle":"`, found in place; another node's may be
 * pretty-printed or ordered otherwise, and is scanned.
 */
function handleAt(body: string): number {
  if (body.startsWith(OPEN)) {
    let i = OPEN.length;
    while (body.charCodeAt(i) >= 48 && body.charCodeAt(i) <= 57) i++;
    if (body.startsWith(HANDLE_KEY, i)) return i + HANDLE_KEY.length - 1;
  }
  let depth = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c === 34) {
      const end = stringEnd(body, i);
      if (end < 0) return -1;
      if (depth === 1 && end - i === 7 && body.startsWith('"handle"', i)) {
        const colon = next(body, end + 1, 58);
        if (colon >= 0) return next(body, colon + 1, 34);
      }
      i = end;
    } else if (c === 123 || c === 91) depth++;
    else if (c === 125 || c === 93) depth--;
  }
  return -1;
}

/**
 * The entry's body naming the identifier as the client spelt it (`asked`, a case variant of
 * the cached one), with its UTF-8 length; undefined when the body names it so already (or
 * names none). The same spelling costs a comparison in place and allocates nothing; another
 * one splices the handle's bytes into a copy, the rest byte for byte (an error body, small,
 * has every mention replaced, its message included).
 */
export function respell(entry: Entry, asked: string): { body: string; bytes: number } | undefined {
  const body = entry.body;
  // The hot case, a hit of a record's answer in the spelling it names: two comparisons in place.
  if (body.startsWith(asked, OK_OPEN.length) && body.charCodeAt(OK_OPEN.length + asked.length) === 34 && body.startsWith(OK_OPEN)) return undefined;
  const at = handleAt(body);
  if (at < 0 || (body.startsWith(asked, at + 1) && body.charCodeAt(at + 1 + asked.length) === 34)) return undefined;
  const end = stringEnd(body, at);
  if (end < 0) return undefined;
  const wanted = JSON.stringify(asked);
  const held = body.slice(at, end + 1);
  if (held === wanted) return undefined;
  if (entry.status !== 200) {
    const out = body.replaceAll(held.slice(1, -1), wanted.slice(1, -1));
    return { body: out, bytes: Buffer.byteLength(out) };
  }
  return {
    body: body.slice(0, at) + wanted + body.slice(end + 1),
    bytes: entry.bytes - Buffer.byteLength(held) + Buffer.byteLength(wanted),
  };
}

/**
 * Handle and values of a 200 entry (for filtered requests). Parsed on each call and not kept
 * on the entry: the cache's byte bound counts the body only.
 */
export function entryAnswer(entry: Entry): { handle: string; values: HandleValue[] } {
  const a = JSON.parse(entry.body) as { handle: string; values?: HandleValue[] };
  return { handle: a.handle, values: a.values ?? [] };
}

export function createResolver(deps: {
  store: Store;
  router: Router;
  prefixes: Prefixes;
  upstream: UpstreamClient;
  cacheMaxBytes: number;
  notFoundTtlSeconds: number;
  staleWindowSeconds: number;
  /** TinyLFU admission in front of the LRU (default true; `cache.admission`). */
  admission?: boolean;
  /** Counters per sketch row (0: derived from the cache size; `cache.admissionCounters`). */
  admissionCounters?: number;
  /** The key filter's bound (`cache.keyFilterMaxBytes`; 0 or absent: no filter). */
  keyFilterMaxBytes?: number;
  now?: () => number;
}): Resolver {
  const now = deps.now ?? Date.now;
  const counts = { hits: 0, misses: 0, stale: 0 };
  // No lru-cache TTLs: expiry is the entry's freshUntil, so nothing in the LRU is ever stale and the victim is its tail.
  const cache = createAnswerCache<Entry>({ maxBytes: deps.cacheMaxBytes, admission: deps.admission ?? true, sketchCounters: deps.admissionCounters });
  const enabled = deps.cacheMaxBytes > 0;
  const staleWindowMs = deps.staleWindowSeconds * 1000;

  const notFound = (id: Identifier): Entry => notFoundEntry(id.text);

  // Both engines: like a cached answer, the filter is kept by the change feed (this node's own
  // writes before they return, other processes' within changes.pollMs), so no per-miss check
  // that nobody else committed (PRAGMA data_version cost SQLite as much as the miss itself).
  const filterMax = deps.keyFilterMaxBytes ?? 0;
  let filter: KeyFilter | undefined;
  /** The filter being filled by a scan: keys the feed adds meanwhile go to it too. */
  let building: KeyFilter | undefined;
  let filterState: KeyFilterState = filterMax > 0 ? 'building' : 'off';
  let loads = 0;
  let filtered = 0;
  /** True when the store certainly has no record `key` (as far as the change feed read so far tells). */
  function surelyAbsent(key: string): boolean {
    if (filter === undefined || filter.mightHave(key)) return false;
    filtered++;
    return true;
  }

  async function fillFilter(load: number): Promise<void> {
    const total = await deps.store.totalRecords();
    // A newer load began meanwhile (a reset): it fills the filter.
    if (load !== loads) return;
    // Room to grow: a rebuild comes when the keys added pass the capacity.
    const capacity = Math.max(1024, total * 2);
    if (keyFilterBytes(capacity) > filterMax) {
      filter = undefined;
      filterState = 'tooLarge';
      return;
    }
    const next = createKeyFilter(capacity);
    building = next;
    let after = '';
    for (;;) {
      const keys = await deps.store.recordKeysAfter(after, 10_000);
      if (load !== loads) return;
      for (const k of keys) next.add(k);
      if (keys.length < 10_000) break;
      after = keys[keys.length - 1]!;
    }
    building = undefined;
    filter = next;
    filterState = 'ready';
  }

  /** The load in flight, if any: writes past the filter's capacity ask for one refill, not one each. */
  let filling: Promise<void> | undefined;

  function loadKeys(): Promise<void> {
    if (filterMax === 0) return Promise.resolve();
    const load = ++loads;
    // Until the new filter is full, misses read the store (a filter that missed keys would answer wrongly).
    if (filter === undefined || filterState !== 'ready') filterState = 'building';
    const done = fillFilter(load)
      .catch(() => {
        // The store could not be read: no filter (every miss reads the store) until the next load.
        if (load === loads) {
          filter = undefined;
          building = undefined;
          filterState = 'building';
        }
      })
      .finally(() => {
        if (filling === done) filling = undefined;
      });
    filling = done;
    return done;
  }

  /** Offers a local answer to the cache; the Cache-Status that says what happened. */
  function store(key: string, entry: Entry, nowMs: number): string {
    if (!enabled) return CACHE_STATUS.uncacheable;
    if (entry.status !== 200) entry.freshUntil = nowMs + deps.notFoundTtlSeconds * 1000;
    return cache.offer(key, entry) ? CACHE_STATUS.stored : CACHE_STATUS.notAdmitted;
  }

  const fresh = (e: Entry) => e.freshUntil === undefined || e.freshUntil >= now();
  /** One upstream request per identifier at a time, for requests that did not arrive forwarded. */
  const flights = new Map<string, Promise<Resolution>>();

  /** Turns another node's answer into a cache entry (cached by its ttl, capped; ttl 0 never). */
  function adopt(id: Identifier, a: UpstreamAnswer, bypass: boolean): Resolution {
    const ours = (s: string) => {
      const mine = bypass ? CACHE_STATUS.bypass : s;
      return a.cacheStatus ? `${a.cacheStatus}, ${mine}` : mine;
    };
    const nowMs = now();
    if (a.responseCode === 1 || a.responseCode === 200) {
      const maxAge = Math.min(MAX_TTL_SECONDS, smallestTtl(a.values as HandleValue[], nowMs));
      const entry = buildEntry(200, a.text, maxAge, a.etag);
      if (maxAge <= 0 || !enabled) return { entry, cacheStatus: ours(CACHE_STATUS.uncacheable), source: 'upstream' };
      entry.freshUntil = nowMs + maxAge * 1000;
      // A forward costs far more than an insert, and a stored answer is the stale copy if the upstream fails: no asked-before rule.
      const stored = cache.offer(id.key, entry, { firstMiss: true });
      return { entry, cacheStatus: ours(stored ? CACHE_STATUS.stored : CACHE_STATUS.notAdmitted), source: 'upstream' };
    }
    const entry = buildEntry(a.status, a.text, undefined);
    if (a.responseCode !== 100 || deps.notFoundTtlSeconds === 0 || !enabled) return { entry, cacheStatus: ours(CACHE_STATUS.uncacheable), source: 'upstream' };
    entry.freshUntil = nowMs + deps.notFoundTtlSeconds * 1000;
    const stored = cache.offer(id.key, entry, { firstMiss: true });
    return { entry, cacheStatus: ours(stored ? CACHE_STATUS.stored : CACHE_STATUS.notAdmitted), source: 'upstream' };
  }

  async function forward(id: Identifier, base: string, opts: ResolveOptions): Promise<Resolution> {
    try {
      // The client rejects values the write path would refuse, so nothing invalid is cached or relayed.
      const answer = await deps.upstream.resolve(base, id.text, { hops: opts.hops, auth: opts.bypassCache, checkValues: relayedValuesProblem });
      return adopt(id, answer, opts.bypassCache);
    } catch (err) {
      const stale = enabled && !opts.bypassCache && isIdnError(err) && STALE_ON.has(err.code) ? cache.peek(id.key) : undefined;
      if (stale === undefined || stale.freshUntil === undefined || stale.status !== 200 || now() - stale.freshUntil > staleWindowMs) throw err;
      counts.stale++;
      return { entry: stale, cacheStatus: staleStatus(Math.max(1, Math.ceil((now() - stale.freshUntil) / 1000))), source: 'cache' };
    }
  }

  function notResponsible(id: Identifier, prefixKey: string): IdnError {
    return new IdnError('IDN_NOT_RESPONSIBLE', `this node does not home prefix ${prefixKey} and has no upstream to ask`, { handle: id.text });
  }

  /** `filtered`: the key filter may answer (not for auth=true, which reads the store itself). */
  async function local(id: Identifier, privateAccess: boolean, filtered: boolean): Promise<{ entry: Entry; cacheable: boolean }> {
    const nowMs = now();
    if (id.namedPrefixKey !== undefined) {
      const rec = await deps.prefixes.prefixRecord(id.namedPrefixKey);
      if (rec === undefined) return { entry: notFound(id), cacheable: true };
      return { entry: answerEntry(rec.handle, JSON.stringify(rec.values), nowMs), cacheable: true };
    }
    if (filtered && surelyAbsent(id.key)) return { entry: notFound(id), cacheable: true };
    return fromRow(id, await deps.store.answerRow(id.key), privateAccess, nowMs);
  }

  /** Counts cache drops (the change feed's invalidations), so an async read can tell one happened meanwhile. */
  let dropped = 0;

  /** The synchronous cache-miss read, when the engine has one (the fast path answers before fastify). */
  const answerRowSync = deps.store.answerRowSync;

  function fromRow(id: Identifier, row: AnswerRow | undefined, privateAccess: boolean, nowMs: number): { entry: Entry; cacheable: boolean } {
    if (row === undefined) return { entry: notFound(id), cacheable: true };
    if (privateAccess && row[2] !== null) return { entry: answerEntry(row[0], row[1], nowMs), cacheable: false };
    return { entry: publicEntry(row, nowMs), cacheable: true };
  }

  /** The public answer of a row, the one every reader without private access gets (and the cache holds). */
  function publicEntry(row: AnswerRow, nowMs: number): Entry {
    const [handle, valuesJson, publicJson, maxAge, expiresAt, etag] = row;
    const entry = answerEntry(handle, publicJson ?? valuesJson, nowMs, { maxAge, expiresAt, etag });
    if (publicJson !== null) entry.partial = true;
    return entry;
  }

  return {
    cached(key) {
      const e = enabled ? cache.get(key) : undefined;
      if (e !== undefined && fresh(e)) {
        counts.hits++;
        return e;
      }
      return undefined;
    },
    async resolve(id, opts) {
      if (!opts.bypassCache) {
        const hit = enabled ? cache.get(id.key) : undefined;
        // A private reader needs the full record, which is never cached.
        if (hit !== undefined && !(opts.privateAccess && hit.partial) && fresh(hit)) {
          counts.hits++;
          return { entry: hit, cacheStatus: CACHE_STATUS.hit, source: 'cache' };
        }
      }
      counts.misses++;
      const routeKey = id.namedPrefixKey ?? id.prefixKey;
      const route = deps.router.route(routeKey);
      const knownPrefix = id.namedPrefixKey !== undefined && (await deps.prefixes.prefixRecord(id.namedPrefixKey)) !== undefined;
      if (route.kind !== 'local' && !knownPrefix) {
        if (route.kind === 'none') throw notResponsible(id, routeKey);
        const base = route.kind === 'delegated' ? route.site : route.url;
        // A request that arrived forwarded never joins a flight: loops end at the hop limit.
        if (opts.hops > 0 || opts.bypassCache) return forward(id, base, opts);
        let flight = flights.get(id.key);
        if (flight === undefined) {
          flight = forward(id, base, opts).finally(() => flights.delete(id.key));
          flights.set(id.key, flight);
        }
        return flight;
      }
      const before = dropped;
      const { entry, cacheable: readable } = await local(id, opts.privateAccess, !opts.bypassCache);
      // A drop while the read was away may have been for what it read: not cached, not stale.
      const cacheable = readable && dropped === before;
      if (!cacheable) cache.note(id.key);
      const status = cacheable ? store(id.key, entry, now()) : CACHE_STATUS.uncacheable;
      return { entry, cacheStatus: opts.bypassCache ? CACHE_STATUS.bypass : status, source: 'store' };
    },
    resolveLocal(id) {
      if (answerRowSync === undefined || id.namedPrefixKey !== undefined || deps.router.route(id.prefixKey).kind !== 'local') return undefined;
      counts.misses++;
      const nowMs = now();
      const row = surelyAbsent(id.key) ? undefined : answerRowSync(id.key);
      const entry = row === undefined ? notFound(id) : publicEntry(row, nowMs);
      return { entry, cacheStatus: store(id.key, entry, nowMs), source: 'store' };
    },
    invalidate(key) {
      dropped++;
      cache.delete(key);
      // A changed record may be a new one: the filter must never say it is absent.
      if (filter !== undefined) {
        filter.add(key);
        if (filter.added > filter.capacity && filling === undefined) void loadKeys();
      }
      building?.add(key);
    },
    invalidateUnder(prefixKey) {
      dropped++;
      // Prefix changes are rare; a scan keeps every unrelated answer (and its stale copy).
      for (const key of cache.keys()) {
        const slash = key.indexOf('/');
        const p = key.startsWith('0.na/') ? key.slice(5) : key.slice(0, slash);
        if (p === prefixKey || p.startsWith(`${prefixKey}.`)) cache.delete(key);
      }
    },
    clear() {
      dropped++;
      cache.clear();
      // Changes this process never saw may have created records: the filter is filled again.
      if (filterMax > 0) {
        filter = undefined;
        building = undefined;
        void loadKeys();
      }
    },
    loadKeys,
    stats: () => ({
      ...cache.stats(),
      ...counts,
      keyFilter: filterState,
      keyFilterKeys: filter?.added ?? 0,
      keyFilterBytes: (filter?.bytes ?? 0) + (building?.bytes ?? 0),
      keyFilterFills: loads,
      filtered,
    }),
  };
}

export interface ChangeFollower {
  /** The last feed row this process applied. */
  cursor(): number;
  /** Resolves once this process has applied every change up to `cursor` (tests wait on it instead of sleeping). */
  caughtUp(cursor: number): Promise<void>;
  /** Reads and applies whatever is new in the feed now (after this engine's own commits). */
  check(): Promise<void>;
  /** Stops the periodic check (the node closes). */
  stop(): void;
}

/**
 * Follows the store's change feed from the newest row at start: `apply` gets each batch of
 * new rows in order; `reset` runs instead when rows this process never saw were pruned (its
 * whole cache must go). Other processes' commits are noticed by the store's data version every
 * `pollMs` (cheap: no read of the feed unless something was committed elsewhere).
 */
export async function createChangeFollower(deps: {
  store: Store;
  pollMs: number;
  /** With an engine that can `watchChanges`: how often the feed is read regardless (default 500). */
  backstopMs?: number;
  apply: (rows: ChangeRow[]) => void | Promise<void>;
  reset: () => void | Promise<void>;
  /** Rows read per statement (a long backlog is read in pages). */
  pageSize?: number;
}): Promise<ChangeFollower> {
  const { store } = deps;
  const pageSize = deps.pageSize ?? 10_000;
  let cursor = await store.changesHead();
  let dataVersion = await store.dataVersion();
  let waiters: Array<{ cursor: number; resolve: () => void }> = [];

  async function dropAll(): Promise<void> {
    // The head is read before the reset, so whatever the reset reloads covers it.
    cursor = await store.changesHead();
    await deps.reset();
  }

  async function catchUp(): Promise<void> {
    for (;;) {
      const rows = await store.changesAfter(cursor, pageSize);
      // Kept rows are contiguous: a first row past cursor + 1 means the ones between were pruned.
      if (rows.length === 0 ? (await store.changesHead()) > cursor : rows[0]!.id !== cursor + 1) return dropAll();
      if (rows.length === 0) return;
      await deps.apply(rows);
      cursor = rows[rows.length - 1]!.id;
      if (rows.length < pageSize) return;
    }
  }

  async function runCheck(): Promise<void> {
    try {
      await catchUp();
    } catch {
      // A read failed (the file went away, the connection closed): nothing cached can be trusted.
      try {
        await deps.reset();
      } catch {
        // The reset's own reads failed too; the next check tries again.
      }
    }
    if (waiters.length === 0) return;
    const still: typeof waiters = [];
    for (const w of waiters)
      if (cursor >= w.cursor) w.resolve();
      else still.push(w);
    waiters = still;
  }

  // Checks run one after another: two at once could apply the same rows twice.
  let chain: Promise<void> = Promise.resolve();
  function check(): Promise<void> {
    chain = chain.then(runCheck);
    return chain;
  }

  // An engine that announces other processes' commits (PostgreSQL's LISTEN) is read when it
  // does, and every backstopMs besides: a notification sent while the connection was down is lost.
  const unwatch = store.watchChanges ? await store.watchChanges(() => void check()) : undefined;
  const timer =
    unwatch !== undefined
      ? setInterval(() => {
          if (!store.isOpen()) return stop();
          void check();
        }, deps.backstopMs ?? 500)
      : setInterval(() => {
          if (!store.isOpen()) return stop();
          void store.dataVersion().then(
            (v) => {
              if (v === dataVersion) return;
              dataVersion = v;
              return check();
            },
            () => undefined,
          );
        }, deps.pollMs);
  timer.unref();
  const unsubscribe = store.onCommit(check);

  function stop(): void {
    clearInterval(timer);
    unsubscribe();
    void unwatch?.().catch(() => undefined);
  }

  return {
    cursor: () => cursor,
    caughtUp(target) {
      if (cursor >= target) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ cursor: target, resolve }));
    },
    check,
    stop,
  };
}
