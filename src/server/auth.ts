/**
 * Routes declare the permission they need (`config: { auth: … }`); one onRoute hook turns
 * each declaration into a route hook that authenticates the request and asks the one
 * authorizer (src/registry/authorize.ts). Checks that depend on the body (bulk lines, the
 * identifiers of an event) call `authorize` themselves.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import type { Identifier } from '../identifier/index.js';
import { type Action, authorize, type PrefixTarget } from '../registry/authorize.js';
import type { Principal, Tokens } from '../registry/tokens.js';

export interface AuthDeclaration {
  action: Action;
  /**
   * What the request names, parsed and routed before the token is looked at (so a bad
   * identifier is 400 and an unhomed prefix 400/301 whatever the token): the prefix to check.
   */
  target?: (request: FastifyRequest) => PrefixTarget;
  /**
   * 'request' checks in onRequest, before the body is read (the contract's order: scope
   * before body); 'handler' (the default) just before the handler, after validation.
   */
  stage?: 'request' | 'handler';
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The identifier the request names, once parsed (echoed in error bodies). */
    idn: Identifier | undefined;
    /** Set by the permission check of a route that declares `config.auth`. */
    principal: Principal | undefined;
  }
  interface FastifyContextConfig {
    /** The permission the route needs; checked by the hook `registerAuthorization` installs. */
    auth?: Action | AuthDeclaration;
    /** A body schema shown in /docs but validated by our own code (messages say what to fix). */
    docsBody?: unknown;
  }
}

/** The principal a route's check set (routes that declare `config.auth` always have one). */
export function principalOf(request: FastifyRequest): Principal {
  return request.principal!;
}

function withHook<T>(existing: T | T[] | undefined, hook: T): T[] {
  return existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook];
}

/** Installs the check for every route registered after it (call before registering routes). */
export function registerAuthorization(app: FastifyInstance, tokens: Pick<Tokens, 'authenticate'>): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const declared = route.config?.auth;
    if (declared === undefined) return;
    const { action, target, stage } = typeof declared === 'string' ? { action: declared, target: undefined, stage: undefined } : declared;
    const check = async (request: FastifyRequest): Promise<void> => {
      const prefix = target?.(request);
      request.principal = authorize(await tokens.authenticate(request.headers.authorization), action, prefix);
    };
    // A new array each time: the HEAD twin of a GET route shares the original one.
    if (stage === 'request') route.onRequest = withHook(route.onRequest, check);
    else route.preHandler = withHook(route.preHandler, check);
  });
}
