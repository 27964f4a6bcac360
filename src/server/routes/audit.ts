/** Auditors' routes (API.md §3.4): events, lineage, history, the audit log and its verification. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { IdnError } from '../../errors.js';
import { parseTime } from '../../lineage/events.js';
import { allows, authorize, type PrefixTarget } from '../../registry/authorize.js';
import { type AuthDeclaration, principalOf } from '../auth.js';
import type { NodeDeps } from '../deps.js';
import { pageLimit, pathIdentifier } from '../request.js';
import { AuditEntry, AuditQuery, AuditVerdict, bearer, EventBody, EventPosted, HandleAnswer, HistoryQuery, LineageAnswer, LineageQuery } from '../schemas.js';

const err4xx = { '4xx': { $ref: 'ErrorBody#' } };

/** Lineage and history name an identifier: read before the token, checked before the query. */
const readerOf = (base: string): AuthDeclaration => ({
  action: 'lineage.read',
  stage: 'request',
  target: (request: FastifyRequest): PrefixTarget => ({ key: pathIdentifier(request, base).prefixKey }),
});

const auditRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { events, auditing, config } = deps;
  const tags = ['lineage and audit'];

  app.post(
    '/api/events',
    {
      config: { docsBody: EventBody, auth: 'event.write' },
      schema: {
        summary: 'Record a lineage event (aggregation or transformation); append-only',
        description: 'Admin, or a registrar with write scope on every local identifier in the event. Foreign identifiers are allowed and flagged.',
        tags,
        security: bearer,
        response: { 201: EventPosted, ...err4xx },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      if (request.body === undefined || request.body === null)
        throw new IdnError('IDN_BODY_UNPARSABLE', 'the request has no body; send an event as application/json');
      const posted = await events.post(request.body, p.actor, (ids, isLocal) => {
        for (const id of ids) if (isLocal(id)) authorize(p, 'event.write', { key: id.prefixKey, spelled: id.prefix, handle: id.text });
      });
      return reply.code(201).send(posted);
    },
  );

  app.get(
    '/api/lineage/*',
    {
      config: { auth: readerOf('/api/lineage/') },
      schema: {
        summary: 'Transitive lineage: what an identifier is made of (down), what it went into (up), or both',
        tags,
        security: bearer,
        querystring: LineageQuery,
        response: { 200: LineageAnswer, ...err4xx },
      },
    },
    async (request) => {
      const q = request.query;
      const depth = q.depth ?? config.lineage.defaultDepth;
      if (depth > config.lineage.maxDepth)
        throw new IdnError('IDN_BAD_REQUEST', `depth ${depth} is over the limit of ${config.lineage.maxDepth} (config lineage.maxDepth)`);
      const asOf = q.asOf === undefined ? new Date().toISOString() : parseTime(q.asOf, 'asOf', 'IDN_BAD_REQUEST');
      const reader = principalOf(request);
      // A scoped auditor sees identifiers outside its prefixes as opaque nodes (API.md §3.4).
      const inScope = (prefixKey: string) => allows(reader, 'lineage.read', { key: prefixKey });
      return auditing.lineage(request.idn!, { direction: q.direction ?? 'both', depth, asOf, inScope });
    },
  );

  app.get(
    '/api/history/*',
    {
      config: { auth: readerOf('/api/history/') },
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
    },
    async (request) => {
      const q = request.query;
      if (q.asOf !== undefined) return auditing.asOf(request.idn!, parseTime(q.asOf, 'asOf', 'IDN_BAD_REQUEST'));
      return auditing.history(request.idn!, q.after ?? 0, pageLimit(q.limit, config.limits.pageSizeMax, 'limit', 'after='));
    },
  );

  app.get(
    '/api/audit',
    {
      config: { auth: 'audit.read' },
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
      const q = request.query;
      return auditing.audit(q.after ?? 0, pageLimit(q.limit, config.limits.pageSizeMax, 'limit', 'after='));
    },
  );

  app.get(
    '/api/audit/verify',
    {
      config: { auth: 'audit.read' },
      schema: { summary: 'Check the whole chain; names the first broken entry', tags, security: bearer, response: { 200: AuditVerdict, ...err4xx } },
    },
    async () => auditing.verify(),
  );
};

export default auditRoutes;
