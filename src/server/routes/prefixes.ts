/** /api/prefixes: enterprise prefixes under the homed ones (admin token). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { principalOf } from '../auth.js';
import type { NodeDeps } from '../deps.js';
import { objectBody } from '../request.js';
import { bearer, PrefixCreate, PrefixInfo, PrefixPatch } from '../schemas.js';

const PrefixParams = Type.Object({ prefix: Type.String() });
const err4xx = { '4xx': { $ref: 'ErrorBody#' } };

const prefixRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { prefixes } = deps;
  const tags = ['prefixes'];

  app.post(
    '/api/prefixes',
    {
      config: { docsBody: PrefixCreate, auth: 'prefix.admin' },
      schema: { summary: 'Create a child prefix: hosted here, or delegated to `site`', tags, security: bearer, response: { 201: PrefixInfo, ...err4xx } },
    },
    async (request, reply) => reply.code(201).send(await prefixes.create(objectBody(request.body), principalOf(request).actor)),
  );

  app.get(
    '/api/prefixes',
    {
      config: { auth: 'prefix.admin' },
      schema: {
        summary: 'List prefixes (optionally the children of `parent`)',
        tags,
        security: bearer,
        querystring: Type.Object({ parent: Type.Optional(Type.String()) }, { additionalProperties: false }),
        response: { 200: Type.Object({ prefixes: Type.Array(PrefixInfo) }), ...err4xx },
      },
    },
    async (request) => ({ prefixes: await prefixes.list(request.query.parent) }),
  );

  app.get(
    '/api/prefixes/:prefix',
    {
      config: { auth: 'prefix.admin' },
      schema: { summary: 'A prefix record', tags, security: bearer, params: PrefixParams, response: { 200: PrefixInfo, ...err4xx } },
    },
    async (request) => prefixes.get(request.params.prefix),
  );

  app.patch(
    '/api/prefixes/:prefix',
    {
      config: { docsBody: PrefixPatch, auth: 'prefix.admin' },
      schema: { summary: 'Change owner, site, status or redirect', tags, security: bearer, params: PrefixParams, response: { 200: PrefixInfo, ...err4xx } },
    },
    async (request) => prefixes.patch(request.params.prefix, objectBody(request.body), principalOf(request).actor),
  );

  app.delete(
    '/api/prefixes/:prefix',
    {
      config: { auth: 'prefix.admin' },
      schema: { summary: 'Delete an empty prefix', tags, security: bearer, params: PrefixParams, response: { 200: PrefixInfo, ...err4xx } },
    },
    async (request) => prefixes.remove(request.params.prefix, principalOf(request).actor),
  );
};

export default prefixRoutes;
