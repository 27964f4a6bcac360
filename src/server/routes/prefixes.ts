/** /api/prefixes: enterprise prefixes under the homed ones (admin token). */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { IdnError } from '../../errors.js';
import { requireAdmin } from '../app.js';
import type { NodeDeps } from '../deps.js';
import { bearer, PrefixCreate, PrefixInfo, PrefixPatch } from '../schemas.js';

const PrefixParams = Type.Object({ prefix: Type.String() });
const err4xx = { '4xx': { $ref: 'ErrorBody#' } };

export function registerPrefixRoutes(app: FastifyInstance, deps: NodeDeps): void {
  const { prefixes } = deps;
  const tags = ['prefixes'];

  app.post(
    '/api/prefixes',
    {
      config: { docsBody: PrefixCreate },
      schema: { summary: 'Create a child prefix: hosted here, or delegated to `site`', tags, security: bearer, response: { 201: PrefixInfo, ...err4xx } },
    },
    async (request, reply) => {
      const p = requireAdmin(request, deps);
      const body = objectBody(request.body);
      return reply.code(201).send(prefixes.create(body, p.actor));
    },
  );

  app.get(
    '/api/prefixes',
    {
      schema: {
        summary: 'List prefixes (optionally the children of `parent`)',
        tags,
        security: bearer,
        querystring: Type.Object({ parent: Type.Optional(Type.String()) }, { additionalProperties: false }),
        response: { 200: Type.Object({ prefixes: Type.Array(PrefixInfo) }), ...err4xx },
      },
    },
    async (request) => {
      requireAdmin(request, deps);
      return { prefixes: prefixes.list((request.query as { parent?: string }).parent) };
    },
  );

  app.get(
    '/api/prefixes/:prefix',
    { schema: { summary: 'A prefix record', tags, security: bearer, params: PrefixParams, response: { 200: PrefixInfo, ...err4xx } } },
    async (request) => {
      requireAdmin(request, deps);
      return prefixes.get((request.params as { prefix: string }).prefix);
    },
  );

  app.patch(
    '/api/prefixes/:prefix',
    {
      config: { docsBody: PrefixPatch },
      schema: { summary: 'Change owner, site or status', tags, security: bearer, params: PrefixParams, response: { 200: PrefixInfo, ...err4xx } },
    },
    async (request) => {
      const p = requireAdmin(request, deps);
      return prefixes.patch((request.params as { prefix: string }).prefix, objectBody(request.body), p.actor);
    },
  );

  app.delete(
    '/api/prefixes/:prefix',
    { schema: { summary: 'Delete an empty prefix', tags, security: bearer, params: PrefixParams, response: { 200: PrefixInfo, ...err4xx } } },
    async (request) => {
      const p = requireAdmin(request, deps);
      return prefixes.remove((request.params as { prefix: string }).prefix, p.actor);
    },
  );
}

export function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) throw new IdnError('IDN_BODY_UNPARSABLE', 'the request has no body; send a JSON object');
  if (typeof body !== 'object' || Array.isArray(body)) throw new IdnError('IDN_INVALID_VALUE', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}
