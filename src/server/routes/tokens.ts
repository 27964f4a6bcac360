/** /api/tokens (admin token). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { principalOf } from '../auth.js';
import type { NodeDeps } from '../deps.js';
import { objectBody } from '../request.js';
import { bearer, TokenCreate, TokenCreated, TokenInfo } from '../schemas.js';

const err4xx = { '4xx': { $ref: 'ErrorBody#' } };

const tokenRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { tokens } = deps;
  const tags = ['tokens'];

  app.post(
    '/api/tokens',
    {
      config: { docsBody: TokenCreate, auth: 'token.admin' },
      schema: { summary: 'Create a token; the secret is in this answer only', tags, security: bearer, response: { 201: TokenCreated, ...err4xx } },
    },
    async (request, reply) => {
      const body = objectBody(request.body);
      const created = await tokens.create({ role: body.role, prefixes: body.prefixes, label: body.label }, principalOf(request).actor);
      return reply.code(201).send({ id: created.id, role: created.role, prefixes: created.prefixes, secret: created.secret });
    },
  );

  app.get(
    '/api/tokens',
    {
      config: { auth: 'token.admin' },
      schema: {
        summary: 'List tokens (never their secrets)',
        tags,
        security: bearer,
        response: { 200: Type.Object({ tokens: Type.Array(TokenInfo) }), ...err4xx },
      },
    },
    async () => ({ tokens: await tokens.list() }),
  );

  app.delete(
    '/api/tokens/:id',
    {
      config: { auth: 'token.admin' },
      schema: { summary: 'Revoke a token', tags, security: bearer, params: Type.Object({ id: Type.String() }), response: { 200: TokenInfo, ...err4xx } },
    },
    async (request) => tokens.revoke(request.params.id, principalOf(request).actor),
  );
};

export default tokenRoutes;
