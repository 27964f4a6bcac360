/** Which paths are identifier pages, and the headers every variant of one carries. */
import { idPath } from './render.js';

/** First path segments that belong to routes, never to an identifier's short URL. */
const RESERVED = new Set(['', 'api', 'docs', 'healthz', 'readyz', 'metrics', 'qr', 'labels', 'face', 'favicon.ico', 'login', 'logout']);

/** True for `/{prefix}` and `/{prefix}/{suffix}` (path without the query). */
export function isShortUrl(path: string): boolean {
  const slash = path.indexOf('/', 1);
  return !RESERVED.has((slash < 0 ? path.slice(1) : path.slice(1, slash)).toLowerCase());
}

export const VARY = 'Accept, Accept-Language';

/** Vary and Link for a short URL answer (JSON, HTML, 304 or redirect alike). */
export function variantHeaders(text: string): string[] {
  return ['vary', VARY, 'link', `</api/handles${idPath(text)}>; rel="alternate"; type="application/json"`];
}
