/** Small readers of a request shared by the route plugins (so no route imports app.ts). */
import { parse as parseQuery } from 'node:querystring';
import type { FastifyRequest } from 'fastify';
import { IdnError } from '../errors.js';
import { decodePathIdentifier, type Identifier, parseIdentifier, parsePrefix } from '../identifier/index.js';

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
  return q < 0 ? undefined : parseQuery(request.url.slice(q + 1))[name];
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
