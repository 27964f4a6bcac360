/** /api/tokens (admin token). */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { requireAdmin } from '../app.js';
import type { NodeDeps } from '../deps.js';
import { bearer, TokenCreate, TokenCreated, TokenInfo } from '../schemas.js';
import { objectBody } from './prefixes.js';

const err4xx = { '4xx': { $ref: 'ErrorBody#' } };

export function registerTokenRoutes(app: FastifyInstance, deps: NodeDeps): void {
  const { tokens } = deps;
  const tags = ['tokens'];

  app.post(
    '/api/tokens',
    {
      config: { docsBody: TokenCreate },
      schema: { summary: 'Create a token; the secret is in this answer only', tags, security: bearer, response: { 201: TokenCreated, ...err4xx } },
    },
    async (request, reply) => {
      const p = requireAdmin(request, deps);
      const body = objectBody(request.body);
      const created = tokens.create({ role: body.role, prefixes: body.prefixes, label: body.label }, p.actor);
      return reply.code(201).send({ id: created.id, role: created.role, prefixes: created.prefixes, secret: created.secret });
    },
  );

  app.get(
    '/api/tokens',
    {
      schema: {
        summary: 'List tokens (never their secrets)',
        tags,
        security: bearer,
        response: { 200: Type.Object({ tokens: Type.Array(TokenInfo) }), ...err4xx },
      },
    },
    async (request) => {
      requireAdmin(request, deps);
      return { tokens: tokens.list() };
    },
  );

  app.delete(
    '/api/tokens/:id',
    { schema: { summary: 'Revoke a token', tags, security: bearer, params: Type.Object({ id: Type.String() }), response: { 200: TokenInfo, ...err4xx } } },
    async (request) => {
      const p = requireAdmin(request, deps);
      return tokens.revoke((request.params as { id: string }).id, p.actor);
    },
  );
}
