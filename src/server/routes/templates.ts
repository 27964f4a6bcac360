/** /api/templates: metadata templates, versioned per prefix (IDIS). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { IdnError } from '../../errors.js';
import { principalOf } from '../auth.js';
import type { NodeDeps } from '../deps.js';
import { prefixParam, routeParam } from '../request.js';
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

const templateRoutes: FastifyPluginAsyncTypebox<{ deps: NodeDeps }> = async (app, { deps }) => {
  const { templates, router } = deps;
  const tags = ['templates'];
  const Params = Type.Object({ prefix: Type.String(), version: Type.String() });

  app.put(
    '/api/templates/:prefix/:version',
    {
      config: {
        docsBody: TemplateBody,
        auth: {
          action: 'template.write',
          target: (request) => {
            const prefix = routeParam(request, 'prefix');
            const { key } = prefixParam(prefix, 'IDN_BAD_REQUEST', 'prefix');
            const route = router.route(key);
            if (route.kind !== 'local')
              throw new IdnError('IDN_NOT_RESPONSIBLE', `this node does not home prefix ${prefix}; define its templates on the node that does`);
            return { key, registered: route.registered };
          },
        },
      },
      schema: {
        summary: 'Create or change a template version (immutable once a record uses it; items are disabled, never deleted)',
        tags,
        security: bearer,
        params: Params,
      },
    },
    async (request, reply) => {
      const { prefix, version } = request.params;
      const p = principalOf(request);
      if (request.body === undefined || request.body === null)
        throw new IdnError('IDN_BODY_UNPARSABLE', 'the request has no body; send {"items": [...]} as application/json');
      const { created, template } = await templates.put(prefix, version, request.body, p.actor);
      return reply.code(created ? 201 : 200).send(template);
    },
  );

  app.get('/api/templates/:prefix/:version', { schema: { summary: 'A template version', tags, params: Params, response: err4xx } }, async (request) => {
    const { prefix, version } = request.params;
    return templates.get(prefix, version);
  });

  app.get(
    '/api/templates/:prefix',
    { schema: { summary: 'Every template version of a prefix', tags, params: Type.Object({ prefix: Type.String() }), response: err4xx } },
    async (request) => ({ templates: templates.list(request.params.prefix) }),
  );
};

export default templateRoutes;
