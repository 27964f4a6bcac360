/** POST /api/prefixes/{prefix}/handles: streamed NDJSON bulk registration (API.md §3.2). */
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { IdnError } from '../../errors.js';
import { parsePrefix } from '../../identifier/index.js';
import { authorizeLocal, authorizeWrite } from '../../registry/records.js';
import { requirePrincipal } from '../app.js';
import type { NodeDeps } from '../deps.js';
import { bearer } from '../schemas.js';

export const NDJSON = 'application/x-ndjson';

export function registerBulkRoutes(app: FastifyInstance, deps: NodeDeps): void {
  const { router, bulk } = deps;
  // The body stays a stream: the handler reads it line by line (no whole-body buffering,
  // so no body limit here; each line is bounded by limits.bulkLineMaxBytes).
  app.addContentTypeParser(NDJSON, (_request, payload, done) => done(null, payload));

  app.post(
    '/api/prefixes/:prefix/handles',
    {
      schema: {
        summary: 'Bulk registration: NDJSON {"handle","values"} per line, committed in chunks',
        description:
          'Answers NDJSON: one {"line","handle","responseCode","message"?} per input line, then {"summary":true,"total","ok","failed","committedThroughLine"}. overwrite=false: existing → 101, identical existing → ok ("unchanged"). onError=chunk: a chunk with a bad line commits nothing.',
        tags: ['registration'],
        security: bearer,
        params: Type.Object({ prefix: Type.String() }),
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
      let prefix: { prefix: string; key: string };
      try {
        prefix = parsePrefix((request.params as { prefix: string }).prefix);
      } catch (err) {
        throw new IdnError('IDN_INVALID_IDENTIFIER', `prefix: ${(err as Error).message}`);
      }
      const route = router.route(prefix.key);
      if (route.kind !== 'local')
        throw new IdnError('IDN_NOT_RESPONSIBLE', `this node does not home prefix ${prefix.prefix}; send the records to the node that does`);
      const principal = requirePrincipal(request, deps);
      authorizeLocal(route, principal, prefix.key, undefined);
      if (request.headers['content-type']?.split(';')[0]?.trim().toLowerCase() !== NDJSON)
        throw new IdnError('IDN_BAD_REQUEST', `send the records as ${NDJSON}: one {"handle","values"} per line`);
      const q = request.query as { overwrite?: boolean; onError?: 'line' | 'chunk' };
      const out = new PassThrough();
      reply.type(`${NDJSON}; charset=utf-8`).send(out);
      const emit = async (line: unknown) => {
        if (out.destroyed) throw new Error('the client closed the answer');
        if (!out.write(`${JSON.stringify(line)}\n`))
          await new Promise<void>((resolve) => {
            const done = () => {
              out.off('drain', done);
              out.off('close', done);
              resolve();
            };
            out.on('drain', done);
            out.on('close', done);
          });
      };
      try {
        await bulk.run(
          request.body as IncomingMessage,
          {
            prefixKey: prefix.key,
            overwrite: q.overwrite !== false,
            onError: q.onError ?? 'line',
            actor: principal.actor,
            checkLine: (id) => authorizeWrite(router.route(id.prefixKey), principal, id),
          },
          emit,
        );
      } catch (err) {
        // The client went away mid-stream: committed chunks stay, the open one is dropped.
        request.log.warn({ err }, 'bulk upload ended early');
      } finally {
        out.end();
      }
      return reply;
    },
  );
}
