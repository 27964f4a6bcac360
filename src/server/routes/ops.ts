/** Liveness and readiness. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { NodeDeps } from '../deps.js';
import { originLabel } from '../metrics.js';

const opsRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  app.get('/healthz', { schema: { summary: 'Alive', tags: ['operations'] } }, async () => ({ status: 'ok' }));
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['operations'] } }, async (_request, reply) =>
    reply.type(deps.metrics.registry.contentType).send(await deps.metrics.render()),
  );
  app.get('/readyz', { schema: { summary: 'Ready: the store answers', tags: ['operations'] } }, async (_request, reply) => {
    let store = 'ok';
    try {
      // A point read: counting the records scans a whole index on SQLite (18-29 ms at 1M
      // records, with the event loop blocked), too much for a probe sent every few seconds.
      await deps.store.auditHead();
    } catch {
      store = 'unavailable';
    }
    const cache = deps.resolver.stats();
    // An upstream that is down does not make this node unready: it still answers what it holds.
    const origins: Record<string, unknown> = {};
    for (const [base, stats] of Object.entries(deps.upstream.stats())) origins[originLabel(base)] = stats;
    const upstream = {
      url: deps.config.upstream.url === '' ? null : originLabel(deps.config.upstream.url),
      origins,
      pendingReports: store === 'ok' ? await deps.store.pendingReports() : null,
    };
    return reply.code(store === 'ok' ? 200 : 503).send({ ready: store === 'ok', store, cache, upstream });
  });
};

export default opsRoutes;
