/** Auditors' routes (API.md §3.4): events, lineage, history, the audit log and its verification. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { IdnError } from '../../errors.js';
import { decodePathIdentifier, type Identifier, parseIdentifier } from '../../identifier/index.js';
import { parseTime } from '../../lineage/events.js';
import type { Direction } from '../../lineage/query.js';
import { canReadPrivate, canWrite, type Principal } from '../../registry/tokens.js';
import { pageLimit, requirePrincipal } from '../app.js';
import type { NodeDeps } from '../deps.js';
import { AuditEntry, AuditQuery, AuditVerdict, bearer, EventBody, EventPosted, HandleAnswer, HistoryQuery, LineageAnswer, LineageQuery } from '../schemas.js';

const err4xx = { '4xx': { $ref: 'ErrorBody#' } };
const READERS = 'history, lineage and the audit log are read with an auditor or admin token';

/** The identifier after `base` in the request path, percent-decoded once. */
function pathIdentifier(request: FastifyRequest, base: string): Identifier {
  const q = request.url.indexOf('?');
  const raw = q < 0 ? request.url.slice(base.length) : request.url.slice(base.length, q);
  const id = parseIdentifier(decodePathIdentifier(raw));
  request.idn = id;
  return id;
}

/** Admin, or an auditor whose scope covers `prefixKey` (the whole log needs an unscoped auditor). */
function requireReader(request: FastifyRequest, deps: NodeDeps, prefixKey: string | undefined): Principal {
  const p = requirePrincipal(request, deps);
  if (p.role === 'admin') return p;
  if (p.role !== 'auditor') throw new IdnError('IDN_FORBIDDEN', `${READERS}; token ${p.id} has role ${p.role}`);
  if (prefixKey === undefined ? p.prefixes.length > 0 : !canReadPrivate(p, prefixKey))
    throw new IdnError(
      'IDN_FORBIDDEN',
      prefixKey === undefined
        ? `the audit log covers every prefix; token ${p.id} is scoped to ${p.prefixes.join(', ')}, so it needs an unscoped auditor or admin token`
        : `token ${p.id} is scoped to ${p.prefixes.join(', ')}, not to ${prefixKey}`,
    );
  return p;
}

export function registerAuditRoutes(app: FastifyInstance, deps: NodeDeps): void {
  const { events, auditing, config } = deps;
  const tags = ['lineage and audit'];

  app.post(
    '/api/events',
    {
      config: { docsBody: EventBody },
      schema: {
        summary: 'Record a lineage event (aggregation or transformation); append-only',
        description: 'Admin, or a registrar with write scope on every local identifier in the event. Foreign identifiers are allowed and flagged.',
        tags,
        security: bearer,
        response: { 201: EventPosted, ...err4xx },
      },
    },
    async (request, reply) => {
      const p = requirePrincipal(request, deps);
      if (p.role !== 'admin' && p.role !== 'registrar')
        throw new IdnError('IDN_FORBIDDEN', `events are posted with a registrar or admin token; token ${p.id} has role ${p.role}`);
      if (request.body === undefined || request.body === null)
        throw new IdnError('IDN_BODY_UNPARSABLE', 'the request has no body; send an event as application/json');
      const posted = events.post(request.body, p.actor, (ids, isLocal) => {
        if (p.role === 'admin') return;
        const outside = ids.find((id) => isLocal(id) && !canWrite(p, id.prefixKey));
        if (outside !== undefined)
          throw new IdnError(
            'IDN_FORBIDDEN',
            `token ${p.id} may not write under ${outside.prefix} (it names ${outside.text}); it is scoped to ${p.prefixes.join(', ')}`,
            {
              handle: outside.text,
            },
          );
      });
      return reply.code(201).send(posted);
    },
  );

  app.get(
    '/api/lineage/*',
    {
      schema: {
        summary: 'Transitive lineage: what an identifier is made of (down), what it went into (up), or both',
        tags,
        security: bearer,
        querystring: LineageQuery,
        response: { 200: LineageAnswer, ...err4xx },
      },
      onRequest: async (request) => {
        requireReader(request, deps, pathIdentifier(request, '/api/lineage/').prefixKey);
      },
    },
    async (request) => {
      const q = request.query as { direction?: Direction; depth?: number; asOf?: string };
      const depth = q.depth ?? config.lineage.defaultDepth;
      if (depth > config.lineage.maxDepth)
        throw new IdnError('IDN_BAD_REQUEST', `depth ${depth} is over the limit of ${config.lineage.maxDepth} (config lineage.maxDepth)`);
      const asOf = q.asOf === undefined ? new Date().toISOString() : parseTime(q.asOf, 'asOf', 'IDN_BAD_REQUEST');
      return auditing.lineage(request.idn!, { direction: q.direction ?? 'both', depth, asOf });
    },
  );

  app.get(
    '/api/history/*',
    {
      schema: {
        summary: 'Every version of a record (who, when, what); with asOf, the record as it was then',
        tags,
        security: bearer,
        querystring: HistoryQuery,
        response: {
          200: Type.Union([
            HandleAnswer,
            Type.Object({
              handle: Type.String(),
              versions: Type.Array(
                Type.Object({
                  version: Type.Integer(),
                  at: Type.String(),
                  actor: Type.String(),
                  action: Type.String(),
                  values: Type.Union([Type.Array(Type.Unknown()), Type.Null()]),
                }),
              ),
              next: Type.Optional(Type.Integer()),
            }),
          ]),
          ...err4xx,
        },
      },
      onRequest: async (request) => {
        requireReader(request, deps, pathIdentifier(request, '/api/history/').prefixKey);
      },
    },
    async (request) => {
      const q = request.query as { asOf?: string; after?: number; limit?: number };
      if (q.asOf !== undefined) return auditing.asOf(request.idn!, parseTime(q.asOf, 'asOf', 'IDN_BAD_REQUEST'));
      return auditing.history(request.idn!, q.after ?? 0, pageLimit(q.limit, config.limits.pageSizeMax, 'limit', 'after='));
    },
  );

  app.get(
    '/api/audit',
    {
      schema: {
        summary: 'The append-only, hash-chained log of every write',
        description: 'hash = SHA-256(prevHash + "\\n" + JSON [seq, at, actor, action, target, digest]); digest = SHA-256 of what was written.',
        tags,
        security: bearer,
        querystring: AuditQuery,
        response: { 200: Type.Object({ entries: Type.Array(AuditEntry), next: Type.Union([Type.Integer(), Type.Null()]) }), ...err4xx },
      },
    },
    async (request) => {
      requireReader(request, deps, undefined);
      const q = request.query as { after?: number; limit?: number };
      return auditing.audit(q.after ?? 0, pageLimit(q.limit, config.limits.pageSizeMax, 'limit', 'after='));
    },
  );

  app.get(
    '/api/audit/verify',
    { schema: { summary: 'Check the whole chain; names the first broken entry', tags, security: bearer, response: { 200: AuditVerdict, ...err4xx } } },
    async (request) => {
      requireReader(request, deps, undefined);
      return auditing.verify();
    },
  );
}
