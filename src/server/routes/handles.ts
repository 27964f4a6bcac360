/** /api/handles (resolution, registration, listing) and /api/resolve (batch). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { performance } from 'node:perf_hooks';
import { IdnError, isIdnError } from '../../errors.js';
import { foldCase, type Identifier, parseIdentifier } from '../../identifier/index.js';
import { smallestTtl } from '../../registry/answer.js';
import { allows, writeTarget } from '../../registry/authorize.js';
import { type ListPage, mintSuffix } from '../../registry/records.js';
import type { Principal } from '../../registry/tokens.js';
import type { HandleValue } from '../../registry/values.js';
import { buildEntry, type Entry, entryAnswer, respell } from '../../resolver/index.js';
import { HOP_HEADER } from '../../upstream/client.js';
import { replyEntry, replyJson } from '../answer.js';
import { type AuthDeclaration, principalOf } from '../auth.js';
import type { NodeDeps } from '../deps.js';
import { pageLimit, pathAfter, prefixParam, rawQueryParam } from '../request.js';
import { BatchBody, bearer, HandleAnswer, ListAnswer, ListQuery, RecordBody, ResolveQuery, WriteQuery } from '../schemas.js';

export const HANDLES_PATH = '/api/handles/';
/** Identifiers of one batch resolved at the same time (matters only for forwarded ones). */
const BATCH_CONCURRENCY = 16;

type ResolveQueryT = Static<typeof ResolveQuery>;

/** The identifier text in the request path: raw bytes → UTF-8 → percent-decoded once. */
export function pathIdentifierText(url: string): string {
  return pathAfter(url, HANDLES_PATH);
}

function typeMatches(type: string, wanted: string[]): boolean {
  const t = foldCase(type);
  for (const w of wanted) {
    const f = foldCase(w);
    if (t === f) return true;
    if (f.endsWith('.') && (t.startsWith(f) || t === f.slice(0, -1))) return true;
  }
  return false;
}

/**
 * The answer after type/index filters and `pretty` (the cached entry itself when neither
 * applies); a rebuilt answer names the identifier as `asked` spelt it.
 */
export function shapeAnswer(entry: Entry, q: ResolveQueryT, nowMs: number, asked: string): Entry {
  const filtered = q.type !== undefined || q.index !== undefined;
  const pretty = q.pretty === true || q.pretty === '';
  if (entry.status !== 200 || (!filtered && !pretty)) return entry;
  const { values } = entryAnswer(entry);
  const handle = asked;
  const types = q.type ?? [];
  const indexes = new Set(q.index ?? []);
  const selected: HandleValue[] = filtered ? values.filter((v) => indexes.has(v.index) || typeMatches(v.type, types)) : values;
  const answer = { responseCode: filtered && selected.length === 0 ? 200 : 1, handle, values: selected };
  const body = pretty ? `${JSON.stringify(answer, null, 2)}\n` : JSON.stringify(answer);
  return buildEntry(200, body, selected.length === 0 ? 0 : smallestTtl(selected, nowMs));
}

/** The IDN-Hop-Count a request arrived with (absent = 0). */
export function hopsOf(request: FastifyRequest): number {
  const raw = request.headers[HOP_HEADER];
  if (raw === undefined) return 0;
  const n = typeof raw === 'string' && /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n)) throw new IdnError('IDN_BAD_REQUEST', `the ${HOP_HEADER} header must be a whole number of hops; got ${JSON.stringify(raw)}`);
  return n;
}

/** Parses `index=` for writes: repeated and/or comma-separated numbers, or `various` (PUT only). */
export function parseIndexParam(raw: unknown, allowVarious: boolean): Set<number> | 'various' | undefined {
  if (raw === undefined) return undefined;
  const parts = (Array.isArray(raw) ? raw : [raw]).flatMap((r) => String(r).split(','));
  if (allowVarious && parts.length === 1 && parts[0] === 'various') return 'various';
  const out = new Set<number>();
  for (const p of parts) {
    const n = /^\d{1,10}$/.test(p) ? Number(p) : NaN;
    if (!(n >= 1 && n <= 4294967295))
      throw new IdnError('IDN_BAD_REQUEST', `index= must be value indexes from 1 to 4294967295${allowVarious ? ' or "various"' : ''}; got "${p}"`);
    out.add(n);
  }
  return out;
}

/** The prefix= of a listing: a prefix, or its prefix handle `0.NA/<prefix>` as Handle clients send it. */
function listPrefix(text: string): { prefix: string; key: string } {
  const bare = /^0\.NA\//i.test(text) ? text.slice(5) : text;
  return prefixParam(bare, 'IDN_BAD_REQUEST', 'prefix=');
}

/** The `next` cursor of a listing: the key the next page starts after (opaque to clients). */
function listCursor(afterKey: string): string {
  return Buffer.from(afterKey, 'utf8').toString('base64url');
}

/** The key a cursor continues after; a cursor this node did not give for `prefix` is 400. */
function cursorKey(cursor: string, prefix: { prefix: string; key: string }): string {
  const key = cursor.length <= 4096 && /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  // Base64url decoding skips what it cannot read: only a cursor that encodes back to itself is one we gave.
  if (key.startsWith(`${prefix.key}/`) && listCursor(key) === cursor) return key;
  throw new IdnError(
    'IDN_BAD_REQUEST',
    `cursor= is not a listing cursor of prefix ${prefix.prefix}; send the "next" value of the previous page unchanged, with the same prefix=, or page through with page=0,1,…`,
  );
}

/** /api/handles and /api/resolve, as an encapsulated plugin. */
const handleRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { resolver, router, tokens, records, config } = deps;

  /** A page of a listing; when more follow, its cursor in `next` and a `Link: <…>; rel="next"` header. */
  function listAnswer(reply: FastifyReply, prefix: { prefix: string }, pageSize: number, page: ListPage) {
    const answer = { responseCode: 1, prefix: prefix.prefix, totalCount: page.totalCount, handles: page.handles };
    if (page.after === undefined) return answer;
    const next = listCursor(page.after);
    // Relative (RFC 8288 allows it): right however the client reached this node, proxies included.
    reply.header('link', `</api/handles?prefix=${encodeURIComponent(prefix.prefix)}&pageSize=${pageSize}&cursor=${next}>; rel="next"`);
    return { ...answer, next };
  }

  /** Syntax (400/102), then routing for reads: unroutable → 400/301. */
  function readIdentifier(request: FastifyRequest): Identifier {
    const id = parseIdentifier(pathIdentifierText(request.url), { slashlessIsPrefix: true });
    request.idn = id;
    return id;
  }

  /** Non-public values are granted silently: a reader without them gets the public answer. */
  function privateAccess(principal: Principal | undefined, id: Identifier): boolean {
    return allows(principal, 'record.readPrivate', { key: id.namedPrefixKey ?? id.prefixKey });
  }

  // HEAD is declared, not derived: fastify's derived HEAD would add Content-Length: 0 to a 304,
  // which the fast path (and the one answer writer) does not send.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/api/handles/*',
    schema: {
      summary: 'Resolve an identifier',
      description: 'Handle.Net JSON. Slashless = prefix handle 0.NA/<prefix>. Headers: ETag, Cache-Control, Cache-Status; If-None-Match → 304.',
      tags: ['resolution'],
      querystring: ResolveQuery,
      response: { 200: HandleAnswer, '4xx': { $ref: 'ErrorBody#' } },
    },
    onRequest: async (request) => {
      readIdentifier(request);
    },
    handler: async (request, reply) => {
      const t0 = performance.now();
      const id = request.idn!;
      const q = request.query;
      const principal = await tokens.authenticate(request.headers.authorization);
      const { entry, cacheStatus, source } = await resolver.resolve(id, {
        bypassCache: q.auth === true,
        privateAccess: q.publicOnly !== true && privateAccess(principal, id),
        hops: hopsOf(request),
      });
      const ms = performance.now() - t0;
      deps.stats.resolution(ms);
      deps.metrics.resolution(source, ms);
      return replyEntry(request, reply, shapeAnswer(entry, q, Date.now(), id.text), cacheStatus, id.text);
    },
  });

  /** PUT/DELETE, checked before the body is read: syntax → routing → auth → scope → prefix status. */
  const writeAuth: AuthDeclaration = {
    action: 'record.write',
    stage: 'request',
    target: (request: FastifyRequest) => {
      let text = pathIdentifierText(request.url);
      if (request.method === 'PUT' && rawQueryParam(request, 'mintNewSuffix') === 'true') text = mintSuffix(text);
      const id = parseIdentifier(text, { slashlessIsPrefix: true });
      request.idn = id;
      return writeTarget(router.route(id.prefixKey), id);
    },
  };

  app.put(
    '/api/handles/*',
    {
      config: { docsBody: RecordBody, auth: writeAuth },
      schema: {
        summary: 'Create or replace a record',
        description:
          'Body {"values":[…]} or a bare array. overwrite=false → 409 if it exists, 201 on create. index= adds/replaces only those values. mintNewSuffix=true appends a fresh suffix.',
        tags: ['registration'],
        security: bearer,
        querystring: WriteQuery,
        response: { 200: HandleAnswer, 201: HandleAnswer, '4xx': { $ref: 'ErrorBody#' } },
      },
    },
    async (request, reply) => {
      const id = request.idn!;
      const q = request.query;
      const overwrite = q.mintNewSuffix === true ? false : q.overwrite !== false;
      const only = parseIndexParam(q.index, true);
      if (request.body === undefined || request.body === null)
        throw new IdnError('IDN_BODY_UNPARSABLE', 'the request has no body; send {"values": [...]} as application/json');
      const principal = principalOf(request);
      if (q.reuseDeleted === true && principal.role !== 'admin')
        throw new IdnError('IDN_FORBIDDEN', 'reuseDeleted=true re-registers a deleted identifier and needs an admin token', { handle: id.text });
      const opts = { overwrite, ...(only !== undefined ? { only } : {}), ...(q.reuseDeleted === true ? { reuseDeleted: true } : {}) };
      const out = await records.put(id, request.body, opts, principal.actor);
      // 201 for what overwrite=false asked to add: a new record, or new values (index=).
      const status = !overwrite && (out.created || (only !== undefined && !out.unchanged)) ? 201 : 200;
      return reply.code(status).send({ responseCode: 1, handle: id.text });
    },
  );

  app.delete(
    '/api/handles/*',
    {
      config: { auth: writeAuth },
      schema: {
        summary: 'Delete a record, or some of its values (index=)',
        tags: ['registration'],
        security: bearer,
        querystring: WriteQuery,
        response: { 200: HandleAnswer, '4xx': { $ref: 'ErrorBody#' } },
      },
    },
    async (request) => {
      const only = parseIndexParam(request.query.index, false);
      await records.remove(request.idn!, only === 'various' ? undefined : only, principalOf(request).actor);
      return { responseCode: 1, handle: request.idn!.text };
    },
  );

  app.get(
    '/api/handles',
    {
      config: {
        auth: {
          action: 'record.readPrivate',
          target: (request) => {
            // Runs after validation: prefix= is there, once.
            const p = listPrefix(String(rawQueryParam(request, 'prefix')));
            const route = router.route(p.key);
            if (route.kind !== 'local') throw new IdnError('IDN_NOT_RESPONSIBLE', `this node does not home prefix ${p.prefix}; list it on the node that does`);
            return { key: p.key };
          },
        },
      },
      schema: {
        summary: 'List the identifiers under a prefix',
        tags: ['registration'],
        security: bearer,
        querystring: ListQuery,
        response: { 200: ListAnswer, '4xx': { $ref: 'ErrorBody#' } },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const prefix = listPrefix(q.prefix);
      if (q.cursor !== undefined) {
        const after = cursorKey(q.cursor, prefix);
        if (q.page !== undefined)
          throw new IdnError('IDN_BAD_REQUEST', 'send either page= or cursor=, not both: the cursor already says where the page starts');
        if (q.pageSize !== undefined && q.pageSize < 1)
          throw new IdnError(
            'IDN_BAD_REQUEST',
            `pageSize must be 1 to ${config.limits.pageSizeMax} with cursor= (or leave it out for ${pageLimit(undefined, config.limits.pageSizeMax, '', '')})`,
          );
        const pageSize = pageLimit(q.pageSize, config.limits.pageSizeMax, 'pageSize', 'cursor=');
        return listAnswer(reply, prefix, pageSize, await records.listAfter(prefix.key, after, pageSize));
      }
      // As the reference does: no pageSize, or a negative page or pageSize, asks for every identifier.
      if (q.pageSize === undefined || q.pageSize < 0 || (q.page !== undefined && q.page < 0)) {
        const max = config.limits.listAllMax;
        const { totalCount } = await records.list(prefix.key, 0, 0);
        if (totalCount > max)
          throw new IdnError(
            'IDN_BAD_REQUEST',
            `prefix ${prefix.prefix} has ${totalCount} identifiers, more than ${max} listed at once (config limits.listAllMax); page through them with page=0,1,… and pageSize= up to ${config.limits.pageSizeMax}`,
          );
        return { responseCode: 1, prefix: prefix.prefix, totalCount, handles: (await records.list(prefix.key, 0, max)).handles };
      }
      const pageSize = pageLimit(q.pageSize, config.limits.pageSizeMax, 'pageSize', 'page=');
      return listAnswer(reply, prefix, pageSize, await records.list(prefix.key, q.page ?? 0, pageSize));
    },
  );

  app.post(
    '/api/resolve',
    {
      schema: {
        summary: 'Resolve many identifiers; one answer per identifier, in order',
        tags: ['resolution'],
        querystring: ResolveQuery,
        body: BatchBody,
        response: { '4xx': { $ref: 'ErrorBody#' } },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const { handles } = request.body;
      if (handles.length > config.limits.batchMax)
        throw new IdnError(
          'IDN_BAD_REQUEST',
          `${handles.length} identifiers in one batch; at most ${config.limits.batchMax} are allowed (config limits.batchMax)`,
        );
      const principal = await tokens.authenticate(request.headers.authorization);
      const hops = hopsOf(request);
      const parts: string[] = new Array<string>(handles.length);
      const now = Date.now();
      const one = async (i: number) => {
        try {
          const id = parseIdentifier(handles[i], { slashlessIsPrefix: true });
          const { entry } = await resolver.resolve(id, {
            bypassCache: q.auth === true,
            privateAccess: q.publicOnly !== true && privateAccess(principal, id),
            hops,
          });
          const shaped = shapeAnswer(entry, { ...q, pretty: false }, now, id.text);
          parts[i] = respell(shaped, id.text)?.body ?? shaped.body;
        } catch (err) {
          if (!isIdnError(err)) throw err;
          parts[i] = JSON.stringify(err.toBody());
        }
      };
      // Foreign identifiers are forwarded; a few at a time keeps one batch from filling the upstream bound.
      let next = 0;
      const worker = async () => {
        while (next < handles.length) await one(next++);
      };
      await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, handles.length) }, worker));
      return replyJson(reply, 200, `{"responseCode":1,"results":[${parts.join(',')}]}`);
    },
  );
};

export default handleRoutes;
