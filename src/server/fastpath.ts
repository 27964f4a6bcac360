/**
 * Cache hits before fastify: a plain GET/HEAD of /api/handles/<id> with no query and no
 * credentials whose answer is cached is written straight to the socket. Anything else
 * (a miss, a query, a token, a bad escape) falls through to fastify unchanged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodePathIdentifier, foldCase } from '../identifier/index.js';
import type { Resolver } from '../resolver/index.js';
import { clock, type NodeStats } from '../upstream/sync.js';
import type { Metrics } from './metrics.js';
import { etagMatches, HANDLES_PATH } from './routes/handles.js';

const NEEDS_DECODING = /[%\x80-\uffff]/;

export function createFastPath(resolver: Resolver, stats: NodeStats, metrics: Pick<Metrics, 'fastHit'>): (req: IncomingMessage, res: ServerResponse) => boolean {
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
    const t0 = clock();
    const entry = resolver.cached(foldCase(text));
    if (entry === undefined) return false;
    if (entry.status === 200 && etagMatches(req.headers['if-none-match'], entry.etag)) {
      res.writeHead(304, ['etag', entry.etag!, 'cache-control', `max-age=${entry.maxAge}`, 'cache-status', 'idnode; hit']);
      res.end();
    } else {
      res.writeHead(entry.status, entry.hitHeaders);
      res.end(method === 'HEAD' ? undefined : entry.body);
    }
    const ms = clock() - t0;
    stats.resolution(ms);
    metrics.fastHit(res.statusCode, ms);
    return true;
  };
}
