/**
 * Pages for people: the short URL `/{prefix}/{suffix}` (the QR payload) answers HTML to
 * browsers and the JSON of /api/handles to everyone else; `/` searches; `/qr/…` and
 * `/labels` print codes. Anonymous pages show the public answer only (the resolver's
 * public view), so they never reveal or hint at a non-public value.
 */
import { createHash } from 'node:crypto';
import { parse as parseForm } from 'node:querystring';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { IdnError, isIdnError } from '../../errors.js';
import { type Identifier, parseIdentifier, prefixChain } from '../../identifier/index.js';
import { allows } from '../../registry/authorize.js';
import { redirectSetting } from '../../registry/prefixes.js';
import { tombstoneOf } from '../../registry/tombstones.js';
import { TEMPLATE_INDEX, TEMPLATE_TYPE } from '../../registry/templates.js';
import type { Principal } from '../../registry/tokens.js';
import { entryAnswer, type Entry } from '../../resolver/index.js';
import { etagMatches, maxAgeText, replyEntry } from '../answer.js';
import type { NodeDeps } from '../deps.js';
import { pathAfter } from '../request.js';
import { hopsOf } from '../routes/handles.js';
import { CSS, CSS_ETAG } from './css.js';
import type { Word } from './i18n.js';
import { type Lang, pickLang, prefersHtml } from './negotiate.js';
import { lineageSvg } from './graph.js';
import { isShortUrl, variantHeaders } from './paths.js';
import { qrSvg } from './qr.js';
import { errorPage, FAVICON, firstUrl, homePage, idPath, labelsPage, loginPage, type PageContext, recordPage, tombstonePage, valueText } from './render.js';
import { createSessions, sessionSecret } from './session.js';

const HTML_TYPE = 'text/html; charset=utf-8';
// Our own stylesheet only; no script at all; forms and links stay on this node.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const HIDDEN = { schema: { hide: true } };

function setAll(reply: FastifyReply, h: string[]): void {
  for (let i = 0; i < h.length; i += 2) reply.header(h[i]!, h[i + 1]);
}

function etagOfText(text: string): string {
  return `"${createHash('sha256').update(text).digest('base64url').slice(0, 22)}"`;
}

/** The headers every page carries, whatever answers it. */
function pageHeaders(reply: FastifyReply): void {
  reply.header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
}

/**
 * A path with a bad percent-escape never reaches a route (fastify refuses it first): a
 * browser asking for a short URL gets the HTML 400 page, the raw path echoed escaped and
 * never decoded; false for anyone else (the caller answers the JSON error).
 */
export function sendBadPathPage(request: FastifyRequest, reply: FastifyReply, err: IdnError, fixedBase: string | undefined): boolean {
  const rawUrl = request.raw.url ?? request.url;
  const q = rawUrl.indexOf('?');
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  if ((request.method !== 'GET' && request.method !== 'HEAD') || !path.startsWith('/') || !isShortUrl(path)) return false;
  // URLSearchParams leaves a bad escape as it is instead of throwing.
  const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
  const format = query.get('format');
  if (format === 'json' || (format !== 'html' && !prefersHtml(request.headers.accept))) return false;
  const ctx: PageContext = {
    lang: pickLang(query.get('lang') ?? undefined, request.headers['accept-language']),
    baseUrl: fixedBase ?? `${request.protocol}://${request.host}`,
    path: '/',
  };
  const page = errorPage(ctx, { status: 400, title: 'badPath', text: path.slice(1), message: err.message });
  pageHeaders(reply);
  reply.code(400).header('cache-control', 'no-store').header('vary', 'Accept, Accept-Language').type(HTML_TYPE).send(page);
  return true;
}

/** The base URL pages name, unless the node listens on port 0 (it learns its port late). */
export function fixedBaseUrl(configured: string): string | undefined {
  const base = configured.replace(/\/+$/, '');
  return /:0$/.test(base) ? undefined : base;
}

function one(v: unknown): string | undefined {
  return Array.isArray(v) ? (v[0] as string | undefined) : (v as string | undefined);
}

/** What a person reads for an error: the title word and the status of the page. */
function errorWord(err: IdnError): Word {
  switch (err.code) {
    case 'IDN_NOT_FOUND':
    case 'IDN_PREFIX_NOT_FOUND':
      return 'notFound';
    case 'IDN_INVALID_IDENTIFIER':
      return 'badIdentifier';
    case 'IDN_UPSTREAM_TIMEOUT':
      return 'upstreamTimeout';
    case 'IDN_UPSTREAM_BAD_ANSWER':
    case 'IDN_UPSTREAM_UNREACHABLE':
      return 'upstreamFailed';
    default:
      return 'error';
  }
}

const pageRoutes: FastifyPluginAsync<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { resolver, config, prefixes, templates, router } = deps;
  const configured = config.baseUrl.replace(/\/+$/, '');
  // A node listening on port 0 learns its port late: its pages then name the host the client used.
  const fixedBase = fixedBaseUrl(configured);

  const sessions = createSessions({
    secret: sessionSecret(config.face.sessionSecret, config.db),
    ttlSeconds: config.face.sessionSeconds,
    secure: configured.startsWith('https:'),
    tokens: deps.tokens,
  });
  const users = new WeakMap<FastifyRequest, Principal | null>();

  // The session is read once per request, before the handler (the token lookup is async).
  app.addHook('preHandler', async (request) => {
    users.set(request, (await sessions.read(request.headers.cookie, Date.now())) ?? null);
  });

  /** The auditor or admin logged in by cookie (page routes only; the API never reads it). */
  function pageUser(request: FastifyRequest): Principal | undefined {
    return users.get(request) ?? undefined;
  }

  function context(request: FastifyRequest): PageContext {
    const q = request.query as Record<string, unknown>;
    const lang: Lang = pickLang(one(q.lang), request.headers['accept-language']);
    const user = pageUser(request);
    return {
      lang,
      baseUrl: fixedBase ?? `${request.protocol}://${request.host}`,
      path: request.url.split('?')[0]!,
      ...(user !== undefined ? { who: `${user.role} ${user.id}` } : {}),
    };
  }

  /** Sends a page with the security headers; 304 when the client holds this exact page. */
  function sendPage(request: FastifyRequest, reply: FastifyReply, status: number, page: string, maxAge: number): FastifyReply {
    const etag = etagOfText(page);
    pageHeaders(reply);
    // A login changes the page: caches keep anonymous and logged-in pages apart.
    const vary = reply.getHeader('vary');
    reply.header('vary', typeof vary === 'string' ? `${vary}, Cookie` : 'Cookie');
    if (pageUser(request) !== undefined) return reply.header('cache-control', 'private, no-store').code(status).type(HTML_TYPE).send(page);
    reply.header('cache-control', maxAgeText(maxAge));
    if (status === 200) {
      reply.header('etag', etag);
      if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send();
    }
    return reply.code(status).type(HTML_TYPE).send(page);
  }

  /** The owner's name: the longest registered prefix of the identifier that has one. */
  async function ownerOf(prefix: string): Promise<{ name?: string; status?: string }> {
    for (const p of prefixChain(prefix)) {
      try {
        const info = await prefixes.get(p);
        if (typeof info.owner.name === 'string') return { name: info.owner.name, status: info.status };
      } catch {
        // not registered here: try its parent
      }
    }
    return {};
  }

  function templateItems(id: Identifier, values: ReturnType<typeof entryAnswer>['values']): Map<number, string> {
    const items = new Map<number, string>();
    const tv = values.find((v) => v.index === TEMPLATE_INDEX && v.type.toUpperCase() === TEMPLATE_TYPE);
    if (tv === undefined) return items;
    try {
      for (const item of templates.get(id.prefix, valueText(tv)).items) items.set(item.idIndex, item.name);
    } catch {
      // a template this node does not hold (another node's record): the dictionary labels it
    }
    return items;
  }

  /**
   * A not-found identifier of this node whose latest version is a deletion: the 410 page.
   * Only this page looks (the JSON answers stay the Handle not-found).
   */
  async function sendTombstone(request: FastifyRequest, reply: FastifyReply, id: Identifier, owner: string | undefined): Promise<FastifyReply | undefined> {
    if (id.namedPrefixKey !== undefined || router.route(id.prefixKey).kind !== 'local') return undefined;
    const tomb = await tombstoneOf(deps.store, id.key);
    if (tomb === undefined) return undefined;
    const user = pageUser(request);
    const page = tombstonePage(context(request), {
      handle: tomb.handle,
      at: tomb.at,
      ...(user !== undefined ? { actor: tomb.actor } : {}),
      ...(owner !== undefined ? { ownerName: owner } : {}),
    });
    return sendPage(request, reply, 410, page, config.cache.notFoundTtlSeconds);
  }

  async function sendError(request: FastifyRequest, reply: FastifyReply, err: IdnError, text: string, id?: Identifier): Promise<FastifyReply> {
    if (err.headers !== undefined) for (const k in err.headers) reply.header(k, err.headers[k]);
    const owner = err.code === 'IDN_NOT_FOUND' ? (await ownerOf(text.split('/')[0]!)).name : undefined;
    if (err.code === 'IDN_NOT_FOUND' && id !== undefined) {
      const sent = await sendTombstone(request, reply, id, owner);
      if (sent !== undefined) return sent;
    }
    const ctx = context(request);
    const page = errorPage(ctx, { status: err.http, title: errorWord(err), text, message: err.message, ...(owner !== undefined ? { ownerName: owner } : {}) });
    return sendPage(request, reply, err.http, page, err.http === 404 ? config.cache.notFoundTtlSeconds : 0);
  }

  /**
   * Whether a short URL acts as the Handle proxy: the nearest registered prefix that sets
   * `redirect` wins, else face.redirect. The router's prefix table follows the change feed,
   * so a changed setting applies to the next request, cached answers included.
   */
  function redirects(route: ReturnType<typeof router.route>): boolean {
    if (route.kind === 'local') return redirectSetting(route.registered, config.face.redirect);
    if (route.kind === 'delegated') return redirectSetting([route.prefix], config.face.redirect);
    return config.face.redirect;
  }

  /** The short URL: `/{prefix}` or `/{prefix}/{suffix}`. */
  async function shortUrl(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const path = request.url.split('?')[0]!;
    if (!isShortUrl(path)) throw new IdnError('IDN_ROUTE_NOT_FOUND', `no route ${request.method} ${path}; the API is described at /docs`);
    const q = request.query as Record<string, unknown>;
    const format = one(q.format);
    if (format !== undefined && format !== 'json' && format !== 'html')
      throw new IdnError('IDN_BAD_REQUEST', `format= must be "json" or "html"; got ${JSON.stringify(format)}`);
    const wantHtml = format !== undefined ? format === 'html' : prefersHtml(request.headers.accept);
    let text: string;
    let id: Identifier;
    try {
      text = pathAfter(request.url, '/');
    } catch (err) {
      if (!wantHtml || !isIdnError(err)) throw err;
      return sendError(request, reply, err, path.slice(1));
    }
    setAll(reply, variantHeaders(text));
    try {
      id = parseIdentifier(text, { slashlessIsPrefix: true });
      request.idn = id;
    } catch (err) {
      if (!wantHtml || !isIdnError(err)) throw err;
      return sendError(request, reply, err, text);
    }
    // JSON reads a token as /api/handles does; pages read the login cookie instead.
    const user = wantHtml ? pageUser(request) : await deps.tokens.authenticate(request.headers.authorization);
    const privateAccess = user !== undefined && allows(user, 'record.readPrivate', { key: id.namedPrefixKey ?? id.prefixKey });
    let entry: Entry;
    let cacheStatus: string;
    try {
      ({ entry, cacheStatus } = await resolver.resolve(id, { bypassCache: false, privateAccess, hops: hopsOf(request) }));
    } catch (err) {
      if (!wantHtml || !isIdnError(err)) throw err;
      err.handle ??= id.text;
      return sendError(request, reply, err, id.text);
    }
    if (!wantHtml) return replyEntry(request, reply, entry, cacheStatus, id.text);
    if (entry.status !== 200) {
      const body = JSON.parse(entry.body) as { code?: string; message?: string };
      const err = new IdnError((body.code ?? 'IDN_NOT_FOUND') as 'IDN_NOT_FOUND', body.message ?? 'not found', { handle: id.text });
      return sendError(request, reply, err, id.text, id);
    }
    const { handle, values } = entryAnswer(entry);
    const route = router.route(id.namedPrefixKey ?? id.prefixKey);
    if (user === undefined && !('noredirect' in q) && id.namedPrefixKey === undefined && redirects(route)) {
      const target = firstUrl(values);
      if (target !== undefined)
        return reply
          .code(302)
          .header('location', target)
          .header('cache-control', maxAgeText(entry.maxAge ?? 0))
          .send();
    }
    const named = id.namedPrefixKey !== undefined ? id.suffix : id.prefix;
    const owner = await ownerOf(named);
    const foreign = route.kind !== 'local';
    const ctx = context(request);
    const audit =
      user !== undefined && !foreign && id.namedPrefixKey === undefined && allows(user, 'lineage.read', { key: id.prefixKey })
        ? await auditView(id, ctx.lang)
        : {};
    const page = recordPage(ctx, {
      ...audit,
      handle,
      values,
      items: templateItems(id, values),
      foreign,
      ...(owner.name !== undefined ? { ownerName: owner.name } : {}),
      ...(owner.status !== undefined ? { prefixStatus: owner.status } : {}),
    });
    return sendPage(request, reply, 200, page, entry.maxAge ?? 0);
  }

  /** History and lineage of a local record, for a reader allowed `lineage.read` on it. */
  async function auditView(id: Identifier, lang: Lang) {
    const asOf = new Date().toISOString();
    const depth = config.lineage.defaultDepth;
    const up = await deps.auditing.lineage(id, { direction: 'up', depth, asOf });
    const down = await deps.auditing.lineage(id, { direction: 'down', depth, asOf });
    const lineage = lineageSvg(up.root, up, down, lang);
    return {
      history: await deps.auditing.history(id, 0, 100),
      lineageTruncated: up.truncated || down.truncated,
      ...(lineage !== undefined ? { lineage } : {}),
    };
  }

  app.route({ method: ['GET', 'HEAD'], url: '/*', ...HIDDEN, handler: shortUrl });

  // Login forms post urlencoded bodies; the parser lives in this plugin's scope only.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_req, body, done) => {
    done(null, parseForm(body as string));
  });

  /** Where a login returns: a path on this node, never another origin. */
  const safeNext = (next: string | undefined) => (next !== undefined && /^\/(?![/\\])/.test(next) ? next : '/');

  app.get('/login', HIDDEN, async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    return sendPage(request, reply, 200, loginPage(context(request), safeNext(one(q.next)), false), 0);
  });

  app.post('/login', HIDDEN, async (request, reply) => {
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== 'null' && new URL(origin).host !== request.host)
      throw new IdnError('IDN_FORBIDDEN', 'log in from a page of this node (the Origin header names another site)');
    const form = (request.body ?? {}) as Record<string, unknown>;
    const next = safeNext(one(form.next));
    const secret = one(form.token)?.trim() ?? '';
    let user: Principal | undefined;
    try {
      user = secret === '' ? undefined : await deps.tokens.authenticate(`Bearer ${secret}`);
    } catch (err) {
      if (!isIdnError(err)) throw err;
    }
    if (user === undefined || (user.role !== 'admin' && user.role !== 'auditor'))
      return sendPage(request, reply, 403, loginPage(context(request), next, true), 0);
    const lang = one(form.lang);
    const target = lang === 'en' || lang === 'zh' ? `${next}${next.includes('?') ? '&' : '?'}lang=${lang}` : next;
    return reply.header('set-cookie', sessions.issue(user.id, Date.now())).header('cache-control', 'no-store').redirect(target, 303);
  });

  app.post('/logout', HIDDEN, async (_request, reply) => reply.header('set-cookie', sessions.clear()).header('cache-control', 'no-store').redirect('/', 303));

  app.get('/', HIDDEN, async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    const ctx = context(request);
    const wanted = one(q.id)?.trim();
    if (wanted === undefined || wanted === '') return sendPage(request, reply, 200, homePage(ctx), 300);
    try {
      const id = parseIdentifier(wanted, { slashlessIsPrefix: true });
      const lang = one(q.lang);
      return reply.redirect(`${idPath(id.namedPrefixKey !== undefined ? id.suffix : id.text)}${lang === 'en' || lang === 'zh' ? `?lang=${lang}` : ''}`, 303);
    } catch (err) {
      if (!isIdnError(err)) throw err;
      return sendPage(request, reply, 400, homePage(ctx, err.message, wanted), 0);
    }
  });

  app.get('/face/style.css', HIDDEN, async (request, reply) => {
    reply.header('etag', CSS_ETAG).header('cache-control', 'max-age=3600').header('x-content-type-options', 'nosniff');
    if (etagMatches(request.headers['if-none-match'], CSS_ETAG)) return reply.code(304).send();
    return reply.type('text/css; charset=utf-8').send(CSS);
  });

  app.get('/favicon.ico', HIDDEN, async (_request, reply) =>
    reply.header('cache-control', 'max-age=86400').header('x-content-type-options', 'nosniff').type('image/svg+xml').send(FAVICON),
  );

  app.get('/qr/*', HIDDEN, async (request, reply) => {
    const id = parseIdentifier(pathAfter(request.url, '/qr/'), { slashlessIsPrefix: true });
    request.idn = id;
    const text = id.namedPrefixKey !== undefined ? id.suffix : id.text;
    const svg = qrSvg(context(request).baseUrl + idPath(text), text);
    const etag = etagOfText(svg);
    reply.header('etag', etag).header('cache-control', 'max-age=86400').header('x-content-type-options', 'nosniff');
    reply.header('content-security-policy', "default-src 'none'");
    if (etagMatches(request.headers['if-none-match'], etag)) return reply.code(304).send();
    return reply.type('image/svg+xml').send(svg);
  });

  app.get('/labels', HIDDEN, async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    const max = config.face.labelsMax;
    try {
      const handles = labelList(one(q.ids), one(q.from), one(q.to), max);
      return sendPage(request, reply, 200, labelsPage(context(request), handles), 300);
    } catch (err) {
      if (!isIdnError(err)) throw err;
      return sendError(request, reply, err, one(q.ids) ?? one(q.from) ?? '');
    }
  });
};

/**
 * The identifiers of a label sheet: `ids=a,b,c`, or `from=P/S0001&to=P/S0100` (same text,
 * trailing numbers counted up with their zero padding), at most `max`.
 */
export function labelList(ids: string | undefined, from: string | undefined, to: string | undefined, max: number): string[] {
  const bad = (m: string) => new IdnError('IDN_BAD_REQUEST', m);
  let out: string[];
  if (ids !== undefined) {
    out = ids
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (out.length > max) throw bad(`${out.length} labels asked; at most ${max} per sheet (config face.labelsMax)`);
  } else if (from !== undefined && to !== undefined) {
    const a = /^(.*?)(\d+)$/.exec(from);
    const b = /^(.*?)(\d+)$/.exec(to);
    if (a === null || b === null || a[1] !== b[1] || a[2]!.length !== b[2]!.length)
      throw bad('from= and to= must be the same identifier up to a trailing number of the same width, e.g. from=88.100.1/E-0001&to=88.100.1/E-0050');
    const start = Number(a[2]);
    const end = Number(b[2]);
    if (end < start) throw bad('to= must not come before from=');
    if (end - start + 1 > max) throw bad(`${end - start + 1} labels asked; at most ${max} per sheet (config face.labelsMax)`);
    out = [];
    for (let n = start; n <= end; n++) out.push(a[1]! + String(n).padStart(a[2]!.length, '0'));
  } else throw bad('name the labels: ids=a,b,c or from=…&to=… (a range under one prefix)');
  if (out.length === 0) throw bad('ids= is empty; list identifiers separated by commas');
  for (const s of out) parseIdentifier(s);
  return out;
}

export default pageRoutes;
