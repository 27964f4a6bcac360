/**
 * Plain resolutions before fastify: a GET/HEAD of /api/handles/<id> with no query, no
 * credentials and no hop count is answered straight from the cache; on a miss, from the
 * store (identifiers homed here, synchronously) or from the upstream (identifiers homed
 * elsewhere, counted in flight like fastify's requests), and written with a raw header list.
 * Anything else (a query, a token, a forwarded request, a bad escape or identifier) falls
 * through to fastify unchanged.
 */
import { createHook } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { IdnError, isIdnError } from '../errors.js';
import { decodePathIdentifier, foldCase, type Identifier, parseIdentifier } from '../identifier/index.js';
import { CACHE_STATUS, type Resolution, type Resolver } from '../resolver/index.js';
import { HOP_HEADER } from '../upstream/client.js';
import type { NodeStats } from '../upstream/sync.js';
import { writeEntry, writeError } from './answer.js';
import type { Metrics } from './metrics.js';
import { prefersHtml } from './pages/negotiate.js';
import { isShortUrl, variantHeaders } from './pages/paths.js';
import { HANDLES_PATH } from './routes/handles.js';

const NEEDS_DECODING = /[%\x80-\uffff]/;

/** What the fast path needs of the shedder and the logger (both built after it). */
export interface FastPathGate {
  /** True while new work past the cache would be refused: misses then go to fastify, which refuses them. */
  overloaded(): boolean;
  /** Takes an in-flight slot for a forwarded miss; a reason when there is none. */
  refuse(): string | undefined;
  done: () => void;
  logError(err: unknown, message: string): void;
}

/** One of node's own `process.nextTick` records, kept for the life of the process (see pinTickRecord). */
let tickRecord: object | undefined;

/**
 * Keeps one `process.nextTick` record alive. node builds each record with an object literal
 * whose computed keys give it hidden classes that only live records hold; a full GC that finds
 * none frees them, the next tick makes new ones, and the literal's property-definition feedback
 * turns megamorphic for good: from then on every tick (about ten per answered request) defines
 * its properties through V8's runtime (bench/README.md, "Where the hot gap is").
 */
export function pinTickRecord(): object | undefined {
  if (tickRecord !== undefined) return tickRecord;
  const hook = createHook({
    init(_id, type, _trigger, resource) {
      if (type === 'TickObject') tickRecord ??= resource;
    },
  }).enable();
  try {
    process.nextTick(() => {});
  } finally {
    hook.disable();
  }
  return tickRecord;
}

export function createFastPath(
  resolver: Resolver,
  stats: NodeStats,
  metrics: Pick<Metrics, 'fastHit'>,
  gate: FastPathGate,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const skip = HANDLES_PATH.length;
  pinTickRecord();

  /** A miss for an identifier homed elsewhere: resolved asynchronously, errors in the Handle error shape. */
  function forward(req: IncomingMessage, res: ServerResponse, id: Identifier, t0: number): void {
    res.once('close', gate.done);
    const answered = (r: Resolution) => {
      writeEntry(req, res, r.entry, r.cacheStatus, undefined, id.text);
      const ms = performance.now() - t0;
      stats.resolution(ms);
      metrics.fastHit(res.statusCode, ms, r.source);
    };
    const failed = (err: unknown) => {
      const idn = isIdnError(err) ? err : new IdnError('IDN_INTERNAL', 'the answer could not be built', { handle: id.text, cause: err });
      if (!isIdnError(err)) gate.logError(err, idn.message);
      idn.handle ??= id.text;
      // Entries carry it in their header list; an error of a resolution is as readable from any origin.
      res.setHeader('access-control-allow-origin', '*');
      writeError(req, res, idn);
      metrics.fastHit(idn.http, undefined);
    };
    resolver.resolve(id, { bypassCache: false, privateAccess: false, hops: 0 }).then(answered).catch(failed);
  }

  /** The identifier text of a raw path part; undefined when it does not decode (fastify answers the 400). */
  function pathText(raw: string): string | undefined {
    if (!NEEDS_DECODING.test(raw)) return raw;
    try {
      return decodePathIdentifier(raw);
    } catch {
      return undefined;
    }
  }

  /**
   * The short URL `/{prefix}/{suffix}` asked for JSON (no Accept, `*∕*`, application/json):
   * a cache hit is the /api/handles answer plus Vary and Link; anything else goes to fastify.
   */
  function shortUrl(req: IncomingMessage, res: ServerResponse, url: string): boolean {
    if (url.includes('?') || req.headers.authorization !== undefined || !isShortUrl(url) || prefersHtml(req.headers.accept)) return false;
    const text = pathText(url.slice(1));
    if (text === undefined) return false;
    const t0 = performance.now();
    const entry = resolver.cached(foldCase(text));
    if (entry === undefined) return false;
    writeEntry(req, res, entry, CACHE_STATUS.hit, variantHeaders(text), text);
    const ms = performance.now() - t0;
    stats.resolution(ms);
    metrics.fastHit(res.statusCode, ms, 'cache');
    return true;
  }

  return (req, res) => {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const url = req.url!;
    if (!url.startsWith(HANDLES_PATH)) return shortUrl(req, res, url);
    if (url.includes('?') || req.headers.authorization !== undefined) return false;
    const text = pathText(url.slice(skip));
    if (text === undefined) return false;
    const t0 = performance.now();
    const key = foldCase(text);
    let entry = resolver.cached(key);
    let cacheStatus: string = CACHE_STATUS.hit;
    // A hit's key has a "/", so the text is the identifier as spelt; a miss answers the parsed one.
    let asked = text;
    if (entry === undefined) {
      // Under overload a miss goes to fastify, whose first hook refuses it.
      if (gate.overloaded()) return false;
      let id;
      try {
        id = parseIdentifier(text, { slashlessIsPrefix: true, folded: key });
      } catch {
        return false;
      }
      const miss = resolver.resolveLocal(id);
      if (miss === undefined) {
        // A request another node forwarded carries its hop count: fastify checks and passes it on.
        if (req.headers[HOP_HEADER] !== undefined || gate.refuse() !== undefined) return false;
        forward(req, res, id, t0);
        return true;
      }
      entry = miss.entry;
      cacheStatus = miss.cacheStatus;
      asked = id.text;
    }
    writeEntry(req, res, entry, cacheStatus, undefined, asked);
    const ms = performance.now() - t0;
    stats.resolution(ms);
    metrics.fastHit(res.statusCode, ms, cacheStatus === CACHE_STATUS.hit ? 'cache' : 'store');
    return true;
  };
}
