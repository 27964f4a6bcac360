/** /api/templates: metadata templates, versioned per prefix (IDIS). */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { IdnError } from '../../errors.js';
import { parsePrefix } from '../../identifier/index.js';
import { authorizeLocal } from '../../registry/records.js';
import { requirePrincipal } from '../app.js';
import type { NodeDeps } from '../deps.js';
import { bearer } from '../schemas.js';

const err4xx = { '4xx': { $ref: 'ErrorBody#' } };
const Item = Type.Object({
  name: Type.String(),
  idIndex: Type.Integer({ minimum: 2000 }),
  idType: Type.String({ description: 'The value type records use at idIndex' }),
  dataType: Type.Union(['string', 'number', 'date', 'url', 'reference', 'file', 'image', 'audio', 'video'].map((d) => Type.Literal(d))),
  required: Type.Optional(Type.Boolean()),
  state: Type.Optional(Type.Union([Type.Literal('enabled'), Type.Literal('disabled')])),
  minLength: Type.Optional(Type.Integer({ minimum: 0 })),
  maxLength: Type.Optional(Type.Integer({ minimum: 0 })),
  pattern: Type.Optional(Type.String()),
  referenceType: Type.Optional(Type.Union([Type.Literal('one'), Type.Literal('many')])),
});
const TemplateBody = Type.Object({ name: Type.Optional(Type.String()), industryCode: Type.Optional(Type.String()), items: Type.Array(Item) });

export function registerTemplateRoutes(app: FastifyInstance, deps: NodeDeps): void {
  const { templates, router } = deps;
  const tags = ['templates'];
  const Params = Type.Object({ prefix: Type.String(), version: Type.String() });

  app.put(
    '/api/templates/:prefix/:version',
    {
      config: { docsBody: TemplateBody },
      schema: {
        summary: 'Create or change a template version (immutable once a record uses it; items are disabled, never deleted)',
        tags,
        security: bearer,
        params: Params,
      },
    },
    async (request, reply) => {
      const { prefix, version } = request.params as { prefix: string; version: string };
      let key: string;
      try {
        key = parsePrefix(prefix).key;
      } catch (err) {
        throw new IdnError('IDN_BAD_REQUEST', `prefix: ${(err as Error).message}`);
      }
      const route = router.route(key);
      if (route.kind !== 'local')
        throw new IdnError('IDN_NOT_RESPONSIBLE', `this node does not home prefix ${prefix}; define its templates on the node that does`);
      const p = requirePrincipal(request, deps);
      authorizeLocal(route, p, key, undefined);
      if (request.body === undefined || request.body === null)
        throw new IdnError('IDN_BODY_UNPARSABLE', 'the request has no body; send {"items": [...]} as application/json');
      const { created, template } = templates.put(prefix, version, request.body, p.actor);
      return reply.code(created ? 201 : 200).send(template);
    },
  );

  app.get('/api/templates/:prefix/:version', { schema: { summary: 'A template version', tags, params: Params, response: err4xx } }, async (request) => {
    const { prefix, version } = request.params as { prefix: string; version: string };
    return templates.get(prefix, version);
  });

  app.get(
    '/api/templates/:prefix',
    { schema: { summary: 'Every template version of a prefix', tags, params: Type.Object({ prefix: Type.String() }), response: err4xx } },
    async (request) => ({ templates: templates.list((request.params as { prefix: string }).prefix) }),
  );
}
