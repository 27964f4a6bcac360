/**
 * The one answer writer: every resolution answer (200, 304, HEAD, a cached 404) and every
 * error in the Handle shape gets its status, Content-Type, Content-Length, ETag,
 * Cache-Control and Cache-Status here, whether the fast path writes it on a raw
 * `node:http` response or a fastify route sends it through its reply.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IdnError } from '../errors.js';
import { type Entry, respell } from '../resolver/index.js';

export const JSON_TYPE = 'application/json; charset=utf-8';
/** Every 401 names both schemes a Handle client may use (RFC 9110 §11.6.1). */
export const WWW_AUTHENTICATE = 'Basic realm="idnode", Bearer realm="idnode"';

const maxAgeTexts = new Map<number, string>();

/** "max-age=N", built once per distinct N (a handful in practice) instead of once per answer sent. */
export function maxAgeText(n: number): string {
  let text = maxAgeTexts.get(n);
  if (text === undefined) {
    text = `max-age=${n}`;
    if (maxAgeTexts.size < 1024) maxAgeTexts.set(n, text);
  }
  return text;
}

/** True when `If-None-Match` names the entry's ETag (weak or strong, or `*`). */
export function etagMatches(ifNoneMatch: string | undefined, etag: string | undefined): boolean {
  if (ifNoneMatch === undefined || etag === undefined) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** True when the answer to a request with this `If-None-Match` is a 304. */
export function notModified(entry: Entry, ifNoneMatch: string | undefined): boolean {
  return entry.status === 200 && etagMatches(ifNoneMatch, entry.etag);
}

/** The raw header list (node:http writeHead form) for sending `entry` (a resolution answer) with its body of `bytes`. */
export function entryHeaders(entry: Entry, cacheStatus: string, bytes = entry.bytes): string[] {
  return sentHeaders(entry, cacheStatus, bytes).slice();
}

/** The header list of a 304 for `entry` (no body, so no Content-Type or Content-Length). */
export function notModifiedHeaders(entry: Entry, cacheStatus: string): string[] {
  return [
    'etag',
    entry.etag!,
    'cache-control',
    maxAgeText(entry.maxAge!),
    'cache-status',
    cacheStatus,
    'x-content-type-options',
    'nosniff',
    'access-control-allow-origin',
    '*',
  ];
}

/** The Handle error body of `err`. */
export function errorText(err: IdnError): string {
  return JSON.stringify(err.toBody());
}

/** The header list of an error answer whose body is `text` (plus what the error carries, e.g. Retry-After). */
export function errorHeaders(err: IdnError, text: string): string[] {
  const h = ['content-type', JSON_TYPE, 'content-length', String(Buffer.byteLength(text)), 'x-content-type-options', 'nosniff'];
  if (err.http === 401) h.push('www-authenticate', WWW_AUTHENTICATE);
  if (err.headers !== undefined) for (const k in err.headers) h.push(k, err.headers[k]!);
  // Every 503 says when to come back, also one raised where no wait is known (a database failing over).
  if (err.http === 503 && err.headers?.['retry-after'] === undefined) h.push('retry-after', '1');
  return h;
}

/**
 * The header list `writeEntry` hands to writeHead, filled in place for each answer: writeHead
 * copies it into the response's header text before it returns, and a fresh list cost every
 * answer about 400 bytes (the literal, then a larger copy for the pushes).
 */
// Resolution is open to any origin (docs/API.md §3): the same bytes whatever Origin is sent, so no Vary.
const sent: string[] = [
  'content-type',
  JSON_TYPE,
  'content-length',
  '',
  'cache-status',
  '',
  'x-content-type-options',
  'nosniff',
  'access-control-allow-origin',
  '*',
];
/** Where `sent`'s optional headers begin: ETag, Cache-Control and WWW-Authenticate. */
const SENT_FIXED = sent.length;

/** `entryHeaders`, in `sent` itself: valid until the next call (writeHead copies it at once). */
function sentHeaders(entry: Entry, cacheStatus: string, bytes: number): string[] {
  sent[3] = String(bytes);
  sent[5] = cacheStatus;
  let n = SENT_FIXED;
  if (entry.etag !== undefined) {
    sent[n++] = 'etag';
    sent[n++] = entry.etag;
  }
  if (entry.maxAge !== undefined) {
    sent[n++] = 'cache-control';
    sent[n++] = maxAgeText(entry.maxAge);
  }
  // A 401 relayed from another node is still a 401 of this one.
  if (entry.status === 401) {
    sent[n++] = 'www-authenticate';
    sent[n++] = WWW_AUTHENTICATE;
  }
  sent.length = n;
  return sent;
}

/**
 * Raw response: the entry, or a 304 when the client holds it already; HEAD gets no body.
 * `extra` headers (Vary and Link of a short URL) go on both. `asked` is the identifier as
 * the request spelt it, echoed as `handle` (the ETag stays the record's).
 */
export function writeEntry(req: IncomingMessage, res: ServerResponse, entry: Entry, cacheStatus: string, extra: string[] | undefined, asked: string): void {
  if (notModified(entry, req.headers['if-none-match'])) {
    const h = notModifiedHeaders(entry, cacheStatus);
    res.writeHead(304, extra === undefined ? h : h.concat(extra));
    res.end();
  } else {
    const variant = respell(entry, asked);
    const h = sentHeaders(entry, cacheStatus, variant?.bytes ?? entry.bytes);
    // concat is a copy already: `sent` itself is never kept.
    res.writeHead(entry.status, extra === undefined ? h : h.concat(extra));
    res.end(req.method === 'HEAD' ? undefined : (variant?.body ?? entry.body));
  }
}

/** Raw response: an error in the Handle shape; HEAD gets no body. */
export function writeError(req: IncomingMessage, res: ServerResponse, err: IdnError): void {
  const text = errorText(err);
  res.writeHead(err.http, errorHeaders(err, text));
  res.end(req.method === 'HEAD' ? undefined : text);
}

/**
 * A request node:http could not parse, answered on the socket itself (no response object
 * exists); the connection is closed after it.
 */
export function writeSocketError(socket: Socket, status: string, err: IdnError, head = false): void {
  const text = errorText(err);
  const h = errorHeaders(err, text);
  let lines = `HTTP/1.1 ${status}\r\n`;
  for (let i = 0; i < h.length; i += 2) lines += `${h[i]}: ${h[i + 1]}\r\n`;
  if (socket.writable) socket.write(`${lines}Connection: close\r\n\r\n${head ? '' : text}`);
  socket.destroy();
}

/** Copies a raw header list onto a fastify reply (the adapter between the two forms). */
function setHeaders(reply: FastifyReply, h: string[]): void {
  for (let i = 0; i < h.length; i += 2) reply.header(h[i]!, h[i + 1]);
}

/**
 * Fastify route: the same status, headers and body as `writeEntry`. Sent through the reply
 * (not reply.raw) so fastify's hooks still see it; fastify strips the body of a HEAD.
 */
export function replyEntry(request: FastifyRequest, reply: FastifyReply, entry: Entry, cacheStatus: string, asked: string): FastifyReply {
  if (notModified(entry, request.headers['if-none-match'])) {
    setHeaders(reply, notModifiedHeaders(entry, cacheStatus));
    return reply.code(304).send();
  }
  const variant = respell(entry, asked);
  setHeaders(reply, entryHeaders(entry, cacheStatus, variant?.bytes));
  return reply.code(entry.status).send(variant?.body ?? entry.body);
}

/** Fastify: an error in the Handle shape, with the same headers as `writeError`. */
export function replyError(reply: FastifyReply, err: IdnError): FastifyReply {
  const text = errorText(err);
  setHeaders(reply, errorHeaders(err, text));
  return reply.code(err.http).send(text);
}

/** Fastify: a JSON text built by hand (batch answers), typed like every other answer. */
export function replyJson(reply: FastifyReply, status: number, text: string): FastifyReply {
  return reply.code(status).header('content-type', JSON_TYPE).send(text);
}
