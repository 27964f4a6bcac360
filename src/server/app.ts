/**
 * The only place that imports fastify. `buildApp()` never listens: main.ts (or a test) does.
 * One error handler translates every error into the Handle error body with an IDN_* code.
 */
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { IdnError, isIdnError } from '../errors.js';
import { replyError, writeSocketError } from './answer.js';
import { registerAuthorization } from './auth.js';
import type { NodeDeps } from './deps.js';
import auditRoutes from './routes/audit.js';
import bulkRoutes, { acceptNdjson } from './routes/bulk.js';
import handleRoutes from './routes/handles.js';
import opsRoutes from './routes/ops.js';
import pageRoutes, { fixedBaseUrl, sendBadPathPage } from './pages/index.js';
import prefixRoutes from './routes/prefixes.js';
import syncRoutes from './routes/sync.js';
import templateRoutes from './routes/templates.js';
import tokenRoutes from './routes/tokens.js';
import { jsonTooDeep } from '../registry/bulk.js';
import { loneSurrogateMessage, loneSurrogatePath, mayHoldLoneSurrogate } from '../registry/text.js';
import { absolutePath, corsDelegator, isJsonpName, jsonpName, parseQueryString, reshapeJson } from './request.js';
import { ErrorBody } from './schemas.js';
import { createShedder, type Shedder } from './shedding.js';

declare module 'fastify' {
  interface FastifyInstance {
    shedder: Shedder;
  }
  interface FastifyRequest {
    /** `callback` (checked) and `pretty` of the query: applied to every JSON answer as it is sent. */
    jsonOut: { callback: string | undefined; pretty: boolean } | undefined;
  }
}

/** Turns anything thrown into an IdnError, keeping the original as `cause`. */
export function toIdnError(err: unknown, request?: FastifyRequest): IdnError {
  if (isIdnError(err)) {
    if (err.handle === undefined && request?.idn !== undefined) err.handle = request.idn.text;
    return err;
  }
  const e = err as { code?: string; statusCode?: number; validation?: unknown; validationContext?: string; message?: string };
  const handle = request?.idn?.text;
  const wrap = (code: ConstructorParameters<typeof IdnError>[0], message: string) => new IdnError(code, message, { handle, cause: err });
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return wrap('IDN_BODY_TOO_LARGE', 'the request body is larger than the limit (config limits.bodyMaxBytes); send less per request or use bulk import');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return wrap('IDN_BAD_REQUEST', 'unsupported Content-Type; send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return wrap('IDN_BODY_UNPARSABLE', 'the body is empty; send a JSON document');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return wrap('IDN_BODY_UNPARSABLE', `the body is not valid JSON: ${e.message ?? ''}`);
    case 'FST_ERR_BAD_URL':
      return wrap('IDN_INVALID_IDENTIFIER', 'the request path has an invalid percent-escape; encode "%" as %25');
  }
  if (e.validation !== undefined) {
    const part = e.validationContext ?? 'request';
    return wrap(part === 'body' ? 'IDN_INVALID_VALUE' : 'IDN_BAD_REQUEST', `${e.message ?? 'invalid request'}`);
  }
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)
    return wrap(e.statusCode === 404 ? 'IDN_ROUTE_NOT_FOUND' : 'IDN_BAD_REQUEST', e.message ?? 'bad request');
  return wrap('IDN_INTERNAL', 'internal error; the node logged the details');
}

/**
 * Requests node:http cannot parse never reach a route; answer them in the Handle error shape.
 * Raw non-ASCII bytes in the path land here (HPE_INVALID_URL): they must be percent-encoded.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: import('node:net').Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status = '400 Bad Request';
  let body: IdnError;
  if (err.code === 'HPE_INVALID_URL')
    body = new IdnError('IDN_INVALID_IDENTIFIER', 'the request path has raw non-ASCII bytes, spaces or controls; percent-encode the identifier as UTF-8');
  else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = '431 Request Header Fields Too Large';
    body = new IdnError('IDN_BAD_REQUEST', 'the request line or headers are too large; identifiers are at most 2048 bytes');
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = '408 Request Timeout';
    // node:http times headers only (bodies are timed by the connection guard, which answers itself).
    body = new IdnError('IDN_BAD_REQUEST', 'the request line and headers did not arrive in time (config limits.headersTimeoutMs); send them at once');
  } else body = new IdnError('IDN_BAD_REQUEST', `the HTTP request could not be parsed (${err.code ?? 'unknown'}); check the request line and headers`);
  // No request object exists: the method is read from the bytes received, so a HEAD gets headers only.
  writeSocketError(socket, status, body, (err as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ');
}

/** The resolution route shapes `pretty` itself (into its cached, ETagged answer). */
function routeTakesPretty(request: FastifyRequest): boolean {
  const qs = request.routeOptions.schema?.querystring as { properties?: Record<string, unknown> } | undefined;
  return qs?.properties?.pretty !== undefined;
}

export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
  serverFactory?: FastifyServerOptions['serverFactory'];
}

export async function buildApp(deps: NodeDeps, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    logController: new LogController({ disableRequestLogging: !deps.config.logRequests }),
    bodyLimit: deps.config.limits.bodyMaxBytes,
    routerOptions: { maxParamLength: 16384, querystringParser: parseQueryString },
    ...(opts.serverFactory ? { serverFactory: opts.serverFactory } : {}),
    // An absolute-form target (`GET http://host/api/…`) is routed by its path, as RFC 9112 §3.2.2 asks of servers.
    rewriteUrl: (req) => absolutePath(req.url ?? '/'),
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, useDefaults: true } },
    clientErrorHandler,
    frameworkErrors: (err, request, reply) => {
      const idn = toIdnError(err, request);
      // A browser following a link with a bad escape gets a page it can read; machines keep the JSON.
      if (err.code === 'FST_ERR_BAD_URL' && sendBadPathPage(request, reply, idn, fixedBaseUrl(deps.config.baseUrl))) return;
      replyError(reply, idn);
    },
  });
  // JSON only: a text/plain body would otherwise reach the validators as a string.
  app.removeContentTypeParser('text/plain');
  // Nesting is bounded before parsing: a deeply nested body would overflow the stack of whatever walks it next.
  const maxDepth = deps.config.limits.jsonMaxDepth;
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (jsonTooDeep(text, maxDepth))
      return done(
        new IdnError('IDN_BODY_UNPARSABLE', `the JSON body nests arrays and objects deeper than ${maxDepth} levels (config limits.jsonMaxDepth); flatten it`),
        undefined,
      );
    // Fastify's own parser (prototype-poisoning checks, its error codes) does the parsing.
    if (!mayHoldLoneSurrogate(text)) return void defaultJson(request, text, done);
    // Checked once here, before anything hashes it into the audit log.
    void defaultJson(request, text, (err, value) => {
      const at = err ? undefined : loneSurrogatePath(value);
      if (at !== undefined) return done(new IdnError('IDN_INVALID_VALUE', loneSurrogateMessage('the JSON body', at)), undefined);
      done(err, value);
    });
  });
  app.decorateRequest('jsonOut', undefined);
  app.decorateRequest('idn', undefined);
  app.decorateRequest('principal', undefined);
  app.addSchema(ErrorBody);

  app.setErrorHandler((err, request, reply) => {
    const idn = toIdnError(err, request);
    if (idn.http >= 500) request.log.error({ err, cause: idn.cause }, idn.message);
    return replyError(reply, idn);
  });
  // Shedding comes first: an overloaded node refuses before it reads a body (health, metrics and admin calls pass).
  const shedder = createShedder({
    maxInFlight: deps.config.shedding.maxInFlight,
    eventLoopDelayMs: deps.config.shedding.eventLoopDelayMs,
    isAdmin: (authorization) => deps.tokens.isAdmin(authorization),
  });
  const unavailable = (why: string) => new IdnError('IDN_UNAVAILABLE', why, { headers: { 'retry-after': '1' } });
  // Exempt requests seen while overloaded, so the slot need not ask for the token again.
  const exempted = new WeakSet<FastifyRequest>();
  app.addHook('onRequest', async (request) => {
    const why = shedder.reason();
    if (why === undefined) return;
    if (!shedder.exempt(request.url, request.headers.authorization)) throw unavailable(why);
    exempted.add(request);
  });
  // The slot is taken once the body is in: a client still sending one holds none (limits.* bound it).
  app.addHook('preValidation', async (request, reply) => {
    if (exempted.has(request)) shedder.enter();
    else {
      const why = shedder.admit(request.url, request.headers.authorization);
      if (why !== undefined) throw unavailable(why);
    }
    reply.raw.once('close', shedder.done);
  });
  app.addHook('onClose', async () => shedder.stop());
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    const q = request.query as Record<string, unknown>;
    if (q.callback === undefined && q.pretty === undefined) return;
    // A bad name is refused with the other query checks (after the identifier and the token); until then no answer is wrapped in it.
    const callback = q.callback === undefined || !isJsonpName(q.callback) ? undefined : q.callback;
    request.jsonOut = { callback, pretty: q.pretty === 'true' };
  });
  // Routes whose query schema refuses unknown parameters still take callback= and pretty (the send hook applies them).
  app.addHook('preValidation', async (request) => {
    if (request.jsonOut === undefined) return;
    const q = request.query as Record<string, unknown>;
    if (q.callback !== undefined && request.jsonOut.callback === undefined) jsonpName(q.callback);
    delete q.callback;
    if (!routeTakesPretty(request)) delete q.pretty;
  });
  // Ajv coerces "1e309" to Infinity and lets it through its bounds: refuse it before a handler does arithmetic with it.
  app.addHook('preHandler', async (request) => {
    const q = request.query;
    if (typeof q !== 'object' || q === null) return;
    for (const [name, value] of Object.entries(q))
      for (const v of Array.isArray(value) ? value : [value])
        if (typeof v === 'number' && !Number.isFinite(v))
          throw new IdnError('IDN_BAD_REQUEST', `${name}= must be a whole number within the parameter's bounds; got a number too large to represent`);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const out = request.jsonOut;
    if (out === undefined || reply.statusCode === 304 || (typeof payload !== 'string' && !Buffer.isBuffer(payload))) return payload;
    if (!String(reply.getHeader('content-type') ?? '').startsWith('application/json')) return payload;
    const text = payload.toString();
    // JSON.stringify without indentation never writes a raw newline: one there means the route made it pretty already.
    const shaped = reshapeJson(text, out.pretty && !text.includes('\n'), out.callback);
    if (out.callback !== undefined) {
      reply.header('content-type', 'application/javascript; charset=utf-8');
      // The ETag names the JSON; a JSONP answer is another representation.
      reply.removeHeader('etag');
    }
    return shaped;
  });
  app.decorate('shedder', shedder);
  app.addHook('onResponse', async (request, reply) => {
    deps.metrics.request(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode);
  });
  app.setNotFoundHandler((request, reply) =>
    replyError(reply, new IdnError('IDN_ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}; the API is described at /docs`)),
  );

  await app.register(swagger, {
    openapi: {
      info: { title: 'idnode', description: 'Industrial-internet identifier resolution (Handle System JSON REST API)', version: '0.1.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: ({ schema, url, route }) => {
      const docsBody = route.config?.docsBody;
      return { schema: docsBody === undefined ? schema : { ...schema, body: docsBody }, url };
    },
  });
  await app.register(cors, { delegator: corsDelegator(deps.config.cors.writeOrigins) });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // The node is often served over plain http on a LAN: upgrading its own scripts to https would break the page.
    transformStaticCSP: (header) => header.replace(' upgrade-insecure-requests;', ''),
  });
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  // Before the routes: the hook turns each route's `config.auth` into its permission check.
  registerAuthorization(app, deps.tokens);
  acceptNdjson(app);
  for (const routes of [handleRoutes, prefixRoutes, tokenRoutes, auditRoutes, bulkRoutes, syncRoutes, templateRoutes, opsRoutes])
    await app.register(routes, { deps });
  // Last: its `/*` (the short URL of an identifier) must not shadow any other route.
  await app.register(pageRoutes, { deps });
  return app;
}
