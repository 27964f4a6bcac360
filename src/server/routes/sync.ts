/** Sync between nodes (API.md §3.3): reports from child nodes, and this node's own outbox. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { IdnError } from '../../errors.js';
import { principalOf } from '../auth.js';
import type { NodeDeps } from '../deps.js';
import { pageLimit } from '../request.js';
import { bearer, QUERY_INT_MAX } from '../schemas.js';

const err4xx = { '4xx': { $ref: 'ErrorBody#' } };
const Page = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: QUERY_INT_MAX.SEQ_MAX })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: QUERY_INT_MAX.INT32_MAX })),
  },
  { additionalProperties: false },
);

const syncRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { syncReceiver, store, config } = deps;
  const tags = ['sync'];

  app.post(
    '/api/sync/reports',
    {
      config: { auth: 'sync.report' },
      schema: {
        summary: 'A child node reports a prefix it created or changed, or its statistics (token role node)',
        description:
          "Idempotent by idempotencyKey: a re-sent report answers 200 with the stored outcome. A prefix outside the reporter's delegation is rejected (403).",
        tags,
        security: bearer,
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      if (request.body === undefined || request.body === null)
        throw new IdnError('IDN_BODY_UNPARSABLE', 'the request has no body; send a report as application/json');
      const { created, report } = await syncReceiver.receive({ id: p.id, prefixes: p.prefixes, actor: p.actor }, request.body);
      return reply
        .code(created ? 201 : 200)
        .send({ responseCode: 1, duplicate: !created, ...report, ...(report.kind === 'prefix' ? { status: 'active' } : {}) });
    },
  );

  app.get(
    '/api/sync/reports',
    {
      config: { auth: 'sync.admin' },
      schema: { summary: 'Reports received from child nodes (admin)', tags, security: bearer, querystring: Page, response: err4xx },
    },
    async (request) => {
      const q = request.query;
      return syncReceiver.list(q.after ?? 0, pageLimit(q.limit, config.limits.pageSizeMax, 'limit', 'after='));
    },
  );

  app.get(
    '/api/sync/outbox',
    {
      config: { auth: 'sync.admin' },
      schema: {
        summary: "This node's reports to its upstream and whether they were sent (admin)",
        tags,
        security: bearer,
        querystring: Page,
        response: err4xx,
      },
    },
    async (request) => {
      const q = request.query;
      const limit = pageLimit(q.limit, config.limits.pageSizeMax, 'limit', 'after=');
      const rows = await store.outbox(q.after ?? 0, limit + 1);
      const page = rows.slice(0, limit);
      return {
        pending: await store.pendingReports(),
        reports: page.map((r) => ({
          id: r.id,
          kind: r.kind,
          idempotencyKey: r.idemKey,
          body: JSON.parse(r.bodyJson) as unknown,
          state: r.state,
          attempts: r.attempts,
          lastError: r.lastError,
          createdAt: r.createdAt,
          doneAt: r.doneAt,
        })),
        next: rows.length > limit ? page.at(-1)!.id : null,
      };
    },
  );
};

export default syncRoutes;
