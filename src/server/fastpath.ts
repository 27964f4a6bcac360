/**
 * Plain resolutions before fastify: a GET/HEAD of /api/handles/<id> with no query and no
 * credentials is answered straight from the cache or, on a miss for an identifier homed
 * here, from the store, and written with a pre-built header array. Anything else (a query,
 * a token, a bad escape or identifier, a prefix handle, a forwarded identifier) falls
 * through to fastify unchanged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodePathIdentifier, foldCase, parseIdentifier } from '../identifier/index.js';
import { CACHE_STATUS, entryHeaders, type Resolver } from '../resolver/index.js';
import { performance } from 'node:perf_hooks';
import type { NodeStats } from '../upstream/sync.js';
import type { Metrics } from './metrics.js';
import { etagMatches, HANDLES_PATH } from './routes/handles.js';

const NEEDS_DECODING = /[%\x80-\uffff]/;

export function createFastPath(
  resolver: Resolver,
  stats: NodeStats,
  metrics: Pick<Metrics, 'fastHit'>,
  overloaded: () => boolean = () => false,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const skip = HANDLES_PATH.length;
  return (req, res) => {
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const url = req.url!;
    if (!url.startsWith(HANDLES_PATH) || url.includes('?') || req.headers.authorization !== undefined) return false;
    let text = url.slice(skip);
    if (NEEDS_DECODING.test(text)) {
      try {
        text = decodePathIdentifier(text);
      } catch {
        return false;
      }
    }
    const t0 = performance.now();
    let entry = resolver.cached(foldCase(text));
    let cacheStatus: string = CACHE_STATUS.hit;
    if (entry === undefined) {
      // Under overload a miss goes to fastify, whose first hook refuses it.
      if (overloaded()) return false;
      let miss;
      try {
        miss = resolver.resolveLocal(parseIdentifier(text, { slashlessIsPrefix: true }));
      } catch {
        return false;
      }
      if (miss === undefined) return false;
      entry = miss.entry;
      cacheStatus = miss.cacheStatus;
    }
    if (entry.status === 200 && etagMatches(req.headers['if-none-match'], entry.etag)) {
      res.writeHead(304, ['etag', entry.etag!, 'cache-control', `max-age=${entry.maxAge}`, 'cache-status', cacheStatus]);
      res.end();
    } else {
      res.writeHead(entry.status, entryHeaders(entry, cacheStatus));
      res.end(method === 'HEAD' ? undefined : entry.body);
    }
    const ms = performance.now() - t0;
    stats.resolution(ms);
    metrics.fastHit(res.statusCode, ms, cacheStatus === CACHE_STATUS.hit ? 'cache' : 'store');
    return true;
  };
}
