/** Auditors' routes (API.md §3.4): events, lineage, history, the audit log and its verification. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { IdnError } from '../../errors.js';
import { parseTime } from '../../lineage/events.js';
import { createVerifier } from '../../lineage/verify.js';
import { authorize, type PrefixTarget } from '../../registry/authorize.js';
import { type AuthDeclaration, principalOf } from '../auth.js';
import type { NodeDeps } from '../deps.js';
import { pageLimit, pathIdentifier } from '../request.js';
import { AuditEntry, AuditQuery, bearer, EventBody, EventPosted, HandleAnswer, HistoryQuery, LineageAnswer, LineageQuery } from '../schemas.js';

const err4xx = { '4xx': { $ref: 'ErrorBody#' } };

/** A verdict; a row that differs from what the log wrote is named by table and key. */
const VerifyVerdict = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer(),
  firstBroken: Type.Optional(
    Type.Object({ seq: Type.Integer(), reason: Type.String(), table: Type.Optional(Type.String()), key: Type.Optional(Type.String()) }),
  ),
});

const VerifyRunning = Type.Object({
  running: Type.Array(
    Type.Object({
      id: Type.Integer(),
      startedAt: Type.String(),
      phase: Type.Union([Type.Literal('chain'), Type.Literal('tables')]),
      checked: Type.Integer(),
      total: Type.Integer(),
      rows: Type.Integer(),
    }),
  ),
});

/** Lineage and history name an identifier: read before the token, checked before the query. */
const readerOf = (base: string): AuthDeclaration => ({
  action: 'lineage.read',
  stage: 'request',
  target: (request: FastifyRequest): PrefixTarget => ({ key: pathIdentifier(request, base).prefixKey }),
});

const auditRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { events, auditing, config, store } = deps;
  const verifier = createVerifier({ store, concurrency: config.audit.verifyConcurrency, slice: config.audit.verifySlice });
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
      return auditing.lineage(request.idn!, { direction: q.direction ?? 'both', depth, asOf });
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
      schema: {
        summary: 'Check the whole chain and every audited table against it; names the first broken entry or row',
        description:
          'Runs in slices (resolution is answered meanwhile); at most audit.verifyConcurrency at once, more is 503 with Retry-After. Progress: GET /api/audit/verify/progress.',
        tags,
        security: bearer,
        response: { 200: VerifyVerdict, ...err4xx },
      },
    },
    async () => verifier.run(),
  );

  app.get(
    '/api/audit/verify/progress',
    {
      config: { auth: 'audit.read' },
      schema: {
        summary: 'The verifications under way: audit entries checked of the total, then table rows compared',
        tags,
        security: bearer,
        response: { 200: VerifyRunning, ...err4xx },
      },
    },
    async () => ({ running: verifier.running() }),
  );
};

export default auditRoutes;
