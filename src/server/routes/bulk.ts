/** POST /api/prefixes/{prefix}/handles: streamed NDJSON bulk registration (API.md §3.2). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { PassThrough, Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { IdnError } from '../../errors.js';
import { authorize, writeTarget } from '../../registry/authorize.js';
import { principalOf } from '../auth.js';
import type { NodeDeps } from '../deps.js';
import { prefixParam, routeParam } from '../request.js';
import { bearer } from '../schemas.js';

export const NDJSON = 'application/x-ndjson';

/**
 * The body stays a stream: the bulk handler reads it line by line (no whole-body buffering,
 * so no body limit here; each line is bounded by limits.bulkLineMaxBytes). Registered on
 * the whole app, as before routes were plugins: what other routes do with such a body is unchanged.
 */
export function acceptNdjson(app: FastifyInstance): void {
  app.addContentTypeParser(NDJSON, (_request, payload, done) => done(null, payload));
}

const bulkRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { router, bulk } = deps;
  const Params = Type.Object({ prefix: Type.String() });

  app.post(
    '/api/prefixes/:prefix/handles',
    {
      config: {
        auth: {
          action: 'record.write',
          // Syntax (400/102) and routing (400/301) before the token, as for single writes.
          target: (request) => {
            const prefix = prefixParam(routeParam(request, 'prefix'), 'IDN_INVALID_IDENTIFIER', 'prefix');
            const route = router.route(prefix.key);
            if (route.kind !== 'local')
              throw new IdnError('IDN_NOT_RESPONSIBLE', `this node does not home prefix ${prefix.prefix}; send the records to the node that does`);
            return { key: prefix.key, registered: route.registered };
          },
        },
      },
      schema: {
        summary: 'Bulk registration: NDJSON {"handle","values"} per line, committed in chunks',
        description:
          'Answers NDJSON: one {"line","handle","responseCode","message"?} per input line, then {"summary":true,"total","ok","failed","committedThroughLine"}. overwrite=false: existing → 101, identical existing → ok ("unchanged"). onError=chunk: a chunk with a bad line commits nothing.',
        tags: ['registration'],
        security: bearer,
        params: Params,
        querystring: Type.Object(
          {
            overwrite: Type.Optional(Type.Boolean({ default: true })),
            onError: Type.Optional(Type.Union([Type.Literal('line'), Type.Literal('chunk')], { default: 'line' })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
      const prefix = prefixParam(request.params.prefix, 'IDN_INVALID_IDENTIFIER', 'prefix');
      const principal = principalOf(request);
      // The NDJSON parser hands the body over as the request stream.
      if (request.headers['content-type']?.split(';')[0]?.trim().toLowerCase() !== NDJSON || !(request.body instanceof Readable))
        throw new IdnError('IDN_BAD_REQUEST', `send the records as ${NDJSON}: one {"handle","values"} per line`);
      const q = request.query;
      const out = new PassThrough();
      reply.type(`${NDJSON}; charset=utf-8`).send(out);
      // A chunk's results go out as one write: lines queue up, and the first queues a microtask
      // that writes them all once the synchronous run of emits is over.
      let queued: string[] = [];
      let behind: Promise<void> | undefined;
      const drained = () =>
        new Promise<void>((resolve) => {
          const done = () => {
            out.off('drain', done);
            out.off('close', done);
            resolve();
          };
          out.on('drain', done);
          out.on('close', done);
        });
      const writeQueued = () => {
        if (queued.length === 0) return;
        const text = queued.join('');
        queued = [];
        if (!out.destroyed && !out.write(text)) behind = drained();
      };
      const emit = (line: unknown): Promise<void> | undefined => {
        if (out.destroyed) throw new Error('the client closed the answer');
        if (queued.push(`${JSON.stringify(line)}\n`) === 1) queueMicrotask(writeQueued);
        // The client is behind: the next line waits for it (as each line waited before).
        const wait = behind;
        behind = undefined;
        return wait;
      };
      try {
        await bulk.run(
          request.body,
          {
            prefixKey: prefix.key,
            overwrite: q.overwrite !== false,
            onError: q.onError ?? 'line',
            actor: principal.actor,
            jsonMaxDepth: deps.config.limits.jsonMaxDepth,
            checkLine: (id) => void authorize(principal, 'record.write', writeTarget(router.route(id.prefixKey), id)),
          },
          emit,
        );
      } catch (err) {
        // The client went away mid-stream: committed chunks stay, the open one is dropped.
        request.log.warn({ err }, 'bulk upload ended early');
      } finally {
        writeQueued();
        out.end();
      }
      return reply;
    },
  );
};

export default bulkRoutes;
