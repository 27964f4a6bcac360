/** Small readers of a request shared by the route plugins (so no route imports app.ts). */
import { parse as parseQuery } from 'node:querystring';
import type { FastifyRequest } from 'fastify';
import type { FastifyCorsOptions } from '@fastify/cors';
import { IdnError } from '../errors.js';
import { decodePathIdentifier, type Identifier, parseIdentifier, parsePrefix } from '../identifier/index.js';

/** Handle query flags that mean true when sent without a value (`?auth`), as the reference server reads them. */
const FLAGS = ['auth', 'pretty', 'publicOnly', 'overwrite', 'mintNewSuffix'];

/** The query string as fastify and the hooks see it: a valueless flag is "true". */
export function parseQueryString(text: string): Record<string, string | string[]> {
  const q = parseQuery(text) as Record<string, string | string[]>;
  for (const f of FLAGS) if (q[f] === '') q[f] = 'true';
  return q;
}

const JSONP_NAME = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;
const JSONP_MAX = 128;

/** True for a JSONP callback name: a dotted path of JavaScript identifiers, so the answer cannot carry script of the caller's choosing. */
export function isJsonpName(raw: unknown): raw is string {
  return typeof raw === 'string' && raw.length <= JSONP_MAX && JSONP_NAME.test(raw);
}

/** The callback name, or the 400 that states the rule. */
export function jsonpName(raw: unknown): string {
  if (!isJsonpName(raw))
    throw new IdnError(
      'IDN_BAD_REQUEST',
      `callback= must be one JavaScript name or a dotted path of them (letters, digits, _ and $, not starting with a digit, e.g. a.b_c$1), at most ${JSONP_MAX} characters, sent once`,
    );
  return raw;
}

/** A JSON answer made pretty and/or wrapped for JSONP (the comment guards against content sniffing of the callback). */
export function reshapeJson(text: string, pretty: boolean, callback: string | undefined): string {
  const json = pretty ? `${JSON.stringify(JSON.parse(text), null, 2)}\n` : text;
  return callback === undefined ? json : `/**/ ${callback}(${json});`;
}

/** The path and query of an absolute-form request target (`http://host/p?q` → `/p?q`); other targets unchanged. */
export function absolutePath(url: string): string {
  if (url.startsWith('/')) return url;
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url);
  if (m === null) return url;
  const rest = url.slice(m[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

const RESOLUTION_METHODS = new Set(['GET', 'HEAD']);

/**
 * CORS per request: resolution (GET/HEAD of /api/handles/…, POST /api/resolve, and their
 * preflights) from any origin; everything else only from `writeOrigins` (comma-separated).
 */
export function corsDelegator(writeOrigins: string): (request: FastifyRequest, cb: (err: Error | null, opts: FastifyCorsOptions) => void) => void {
  const origins = writeOrigins
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  const open: FastifyCorsOptions = { origin: '*', methods: 'GET,HEAD,POST', strictPreflight: false, maxAge: 86400 };
  const closed: FastifyCorsOptions = {
    origin: origins.length === 0 ? false : origins,
    methods: 'GET,HEAD,PUT,POST,PATCH,DELETE',
    strictPreflight: false,
    maxAge: 86400,
  };
  return (request, cb) => {
    const q = request.url.indexOf('?');
    const path = q < 0 ? request.url : request.url.slice(0, q);
    const asked = request.method === 'OPTIONS' ? String(request.headers['access-control-request-method'] ?? 'GET').toUpperCase() : request.method;
    const resolution = (path.startsWith('/api/handles/') && RESOLUTION_METHODS.has(asked)) || (path === '/api/resolve' && asked === 'POST');
    cb(null, resolution ? open : closed);
  };
}

/**
 * A page size from the query: 100 (at most `max`) when absent, 400/4 over `max`.
 * `name` and `how` are the parameter and the way to page, for the message.
 */
export function pageLimit(value: number | undefined, max: number, name: string, how: string): number {
  if (value === undefined) return Math.min(100, max);
  if (value > max) throw new IdnError('IDN_BAD_REQUEST', `${name} ${value} is over the limit of ${max} (config limits.pageSizeMax); page through with ${how}`);
  return value;
}

/** A body that must be a JSON object (validated by our code, so the message says what to fix). */
export function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) throw new IdnError('IDN_BODY_UNPARSABLE', 'the request has no body; send a JSON object');
  if (typeof body !== 'object' || Array.isArray(body)) throw new IdnError('IDN_INVALID_VALUE', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

/** The path after `base`, without the query: raw bytes → UTF-8 → percent-decoded once. */
export function pathAfter(url: string, base: string): string {
  const q = url.indexOf('?');
  return decodePathIdentifier(q < 0 ? url.slice(base.length) : url.slice(base.length, q));
}

/** The identifier after `base` in the request path, remembered on the request (error bodies echo it). */
export function pathIdentifier(request: FastifyRequest, base: string, opts: { slashlessIsPrefix?: boolean } = {}): Identifier {
  const id = parseIdentifier(pathAfter(request.url, base), opts);
  request.idn = id;
  return id;
}

/**
 * One query parameter as sent, for onRequest hooks (they run before fastify validates and
 * coerces the query): a string, an array when repeated, undefined when absent.
 */
export function rawQueryParam(request: FastifyRequest, name: string): string | string[] | undefined {
  const q = request.url.indexOf('?');
  return q < 0 ? undefined : parseQueryString(request.url.slice(q + 1))[name];
}

/** A prefix from the path or the query; `code` and `what` shape the 400 when it is malformed. */
export function prefixParam(text: string, code: 'IDN_BAD_REQUEST' | 'IDN_INVALID_IDENTIFIER', what: string): { prefix: string; key: string } {
  try {
    return parsePrefix(text);
  } catch (err) {
    throw new IdnError(code, `${what}: ${(err as Error).message}`);
  }
}

/** A path parameter, for checks that run before the handler (whose `request.params` is typed). */
export function routeParam(request: FastifyRequest, name: string): string {
  const params = request.params;
  const value: unknown = typeof params === 'object' && params !== null ? Reflect.get(params, name) : undefined;
  if (typeof value !== 'string') throw new Error(`the route has no parameter ${name}`);
  return value;
}
