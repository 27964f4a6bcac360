/**
 * The one authorizer, by its table: every role × action × in/out of scope × prefix status;
 * then, over HTTP, that every route declaring a permission refuses without a token and
 * with the wrong role.
 */
import t from 'tap';
import { ACTIONS, type Action, allows, authorize, type PrefixTarget, writeTarget } from '../src/registry/authorize.js';
import { parseIdentifier } from '../src/identifier/index.js';
import type { Principal } from '../src/registry/tokens.js';
import type { Route } from '../src/upstream/routing.js';
import { ADMIN, registrar, startNode } from './helpers.js';

const principals = {
  admin: { id: 'tok_admin', role: 'admin', prefixes: [], actor: 'tok_admin' },
  registrar: { id: 'tok_reg', role: 'registrar', prefixes: ['88.100.7'], actor: 'tok_reg' },
  scopedAuditor: { id: 'tok_aud', role: 'auditor', prefixes: ['88.100.7'], actor: 'tok_aud' },
  auditor: { id: 'tok_all', role: 'auditor', prefixes: [], actor: 'tok_all' },
  node: { id: 'tok_node', role: 'node', prefixes: ['88.100.7'], actor: 'tok_node' },
} satisfies Record<string, Principal>;
type Who = keyof typeof principals;

/** In scope of the scoped tokens (a child of 88.100.7), and out of it (88.100.70 is not under 88.100.7). */
const IN = '88.100.7.1';
const OUT = '88.100.70';

type Outcome = 'ok' | 'IDN_FORBIDDEN' | 'IDN_PREFIX_NOT_ACTIVE';
/** [in scope, out of scope] for the actions that name a prefix, with every prefix on the way active. */
const scoped: Record<'record.write' | 'template.write' | 'record.readPrivate' | 'event.write' | 'lineage.read', Record<Who, [Outcome, Outcome]>> = {
  'record.write': {
    admin: ['ok', 'ok'],
    registrar: ['ok', 'IDN_FORBIDDEN'],
    scopedAuditor: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
    auditor: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
    node: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
  },
  'template.write': {
    admin: ['ok', 'ok'],
    registrar: ['ok', 'IDN_FORBIDDEN'],
    scopedAuditor: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
    auditor: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
    node: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
  },
  'record.readPrivate': {
    admin: ['ok', 'ok'],
    registrar: ['ok', 'IDN_FORBIDDEN'],
    scopedAuditor: ['ok', 'IDN_FORBIDDEN'],
    auditor: ['ok', 'ok'],
    node: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
  },
  'event.write': {
    admin: ['ok', 'ok'],
    registrar: ['ok', 'IDN_FORBIDDEN'],
    scopedAuditor: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
    auditor: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
    node: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
  },
  'lineage.read': {
    admin: ['ok', 'ok'],
    registrar: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
    scopedAuditor: ['ok', 'IDN_FORBIDDEN'],
    auditor: ['ok', 'ok'],
    node: ['IDN_FORBIDDEN', 'IDN_FORBIDDEN'],
  },
};
/** The actions that name no prefix. */
const global: Record<'prefix.admin' | 'token.admin' | 'sync.admin' | 'sync.report' | 'audit.read' | 'event.write', Record<Who, Outcome>> = {
  'prefix.admin': { admin: 'ok', registrar: 'IDN_FORBIDDEN', scopedAuditor: 'IDN_FORBIDDEN', auditor: 'IDN_FORBIDDEN', node: 'IDN_FORBIDDEN' },
  'token.admin': { admin: 'ok', registrar: 'IDN_FORBIDDEN', scopedAuditor: 'IDN_FORBIDDEN', auditor: 'IDN_FORBIDDEN', node: 'IDN_FORBIDDEN' },
  'sync.admin': { admin: 'ok', registrar: 'IDN_FORBIDDEN', scopedAuditor: 'IDN_FORBIDDEN', auditor: 'IDN_FORBIDDEN', node: 'IDN_FORBIDDEN' },
  'sync.report': { admin: 'IDN_FORBIDDEN', registrar: 'IDN_FORBIDDEN', scopedAuditor: 'IDN_FORBIDDEN', auditor: 'IDN_FORBIDDEN', node: 'ok' },
  'audit.read': { admin: 'ok', registrar: 'IDN_FORBIDDEN', scopedAuditor: 'IDN_FORBIDDEN', auditor: 'ok', node: 'IDN_FORBIDDEN' },
  'event.write': { admin: 'ok', registrar: 'ok', scopedAuditor: 'IDN_FORBIDDEN', auditor: 'IDN_FORBIDDEN', node: 'IDN_FORBIDDEN' },
};

function outcome(p: Principal | undefined, action: Action, prefix?: PrefixTarget): string {
  try {
    authorize(p, action, prefix);
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
}

const STATUSES = ['active', 'pending', 'suspended'] as const;
/** Writes need every registered prefix on the way active; reads and events do not look at status. */
const STATUS_MATTERS = new Set<Action>(['record.write', 'template.write']);

t.test('the table: role × action × in/out of scope × prefix status', async (t) => {
  t.same(new Set([...Object.keys(scoped), ...Object.keys(global)]), new Set(ACTIONS), 'the table covers every action');
  for (const [action, byWho] of Object.entries(scoped) as [Action, Record<Who, [Outcome, Outcome]>][])
    for (const who of Object.keys(principals) as Who[])
      for (const [i, key] of [IN, OUT].entries())
        for (const status of STATUSES) {
          const prefix: PrefixTarget = { key, handle: `${key}/X`, registered: [{ prefix: key, status }] };
          const inScope = byWho[who][i]!;
          const want = inScope === 'ok' && status !== 'active' && STATUS_MATTERS.has(action) ? 'IDN_PREFIX_NOT_ACTIVE' : inScope;
          const label = `${who} ${action} ${i === 0 ? 'in scope' : 'out of scope'}, prefix ${status}`;
          t.equal(outcome(principals[who], action, prefix), want, label);
          t.equal(allows(principals[who], action, prefix), want === 'ok', `${label}: allows() agrees`);
        }
  for (const [action, byWho] of Object.entries(global) as [Action, Record<Who, Outcome>][])
    for (const who of Object.keys(principals) as Who[]) {
      t.equal(outcome(principals[who], action), byWho[who], `${who} ${action}`);
      t.equal(allows(principals[who], action), byWho[who] === 'ok', `${who} ${action}: allows() agrees`);
    }
  for (const action of ACTIONS) {
    t.equal(outcome(undefined, action, { key: IN }), 'IDN_AUTH_REQUIRED', `no token, ${action}: 401`);
    t.notOk(allows(undefined, action, { key: IN }), `no token, ${action}: not allowed`);
  }
});

t.test('the messages say what to fix, and errors echo the identifier', async (t) => {
  const msg = (p: Principal | undefined, action: Action, prefix?: PrefixTarget) => {
    try {
      authorize(p, action, prefix);
      return undefined;
    } catch (err) {
      const e = err as { message: string; handle?: string; http: number; responseCode: number };
      return { message: e.message, handle: e.handle, http: e.http, responseCode: e.responseCode };
    }
  };
  t.same(msg(undefined, 'record.write', { key: IN, handle: `${IN}/X` }), {
    message: 'this request needs a token: send "Authorization: Bearer <token>"',
    handle: `${IN}/X`,
    http: 401,
    responseCode: 402,
  });
  t.same(msg(principals.registrar, 'record.write', { key: OUT, handle: `${OUT}/X` }), {
    message: 'token tok_reg (role registrar) may not write under prefix 88.100.70; it is scoped to 88.100.7',
    handle: `${OUT}/X`,
    http: 403,
    responseCode: 401,
  });
  t.equal(
    msg(principals.node, 'record.readPrivate', { key: OUT })!.message,
    'token tok_node (role node) may not read under prefix 88.100.70; it is scoped to 88.100.7',
  );
  t.equal(
    msg(principals.auditor, 'record.write', { key: IN })!.message,
    'token tok_all (role auditor) may not write under prefix 88.100.7.1',
    'no scope named for an unscoped token',
  );
  t.same(
    msg(principals.registrar, 'record.write', {
      key: IN,
      handle: `${IN}/X`,
      registered: [
        { prefix: '88.100.7', status: 'active' },
        { prefix: IN, status: 'pending' },
      ],
    }),
    {
      message: 'prefix 88.100.7.1 is pending (waiting for the upstream node to accept it); registrations open when it is active',
      handle: `${IN}/X`,
      http: 403,
      responseCode: 401,
    },
  );
  t.equal(
    msg(principals.admin, 'template.write', { key: IN, registered: [{ prefix: '88.100.7', status: 'suspended' }] })!.message,
    'prefix 88.100.7 is suspended; registrations open when it is active',
    'the first prefix on the way that is not active is named',
  );
  t.equal(msg(principals.auditor, 'prefix.admin')!.message, 'this needs an admin token; token tok_all has role auditor');
  t.equal(msg(principals.admin, 'sync.report')!.message, 'sync reports are sent with a token of role node; token tok_admin has role admin');
  t.equal(msg(principals.node, 'event.write')!.message, 'events are posted with a registrar or admin token; token tok_node has role node');
  t.same(msg(principals.registrar, 'event.write', { key: OUT, spelled: '88.100.70', handle: '88.100.70/Lot-1' }), {
    message: 'token tok_reg may not write under 88.100.70 (it names 88.100.70/Lot-1); it is scoped to 88.100.7',
    handle: '88.100.70/Lot-1',
    http: 403,
    responseCode: 401,
  });
  t.equal(
    msg(principals.registrar, 'lineage.read', { key: IN })!.message,
    'history, lineage and the audit log are read with an auditor or admin token; token tok_reg has role registrar',
  );
  t.equal(msg(principals.scopedAuditor, 'lineage.read', { key: OUT })!.message, 'token tok_aud is scoped to 88.100.7, not to 88.100.70');
  t.equal(
    msg(principals.scopedAuditor, 'audit.read')!.message,
    'the audit log covers every prefix; token tok_aud is scoped to 88.100.7, so it needs an unscoped auditor or admin token',
  );
  t.equal(authorize(principals.registrar, 'record.write', { key: IN }), principals.registrar, 'the principal comes back when allowed');
  for (const action of ['record.write', 'template.write', 'record.readPrivate', 'lineage.read'] as const)
    t.throws(
      () => authorize(principals.admin, action),
      { message: `authorize: ${action} needs the prefix it applies to` },
      `${action} without a prefix is a bug, never a grant`,
    );
});

t.test('writeTarget: prefix handles and prefixes homed elsewhere are refused before the token matters', async (t) => {
  const local: Route = { kind: 'local', homedKey: '88.100', registered: [] };
  t.same(writeTarget(local, parseIdentifier('88.100.7/A')), { key: '88.100.7', handle: '88.100.7/A', registered: [] });
  t.throws(() => writeTarget(local, parseIdentifier('88.100.7', { slashlessIsPrefix: true })), { code: 'IDN_FORBIDDEN', message: /is a prefix handle/ });
  t.throws(() => writeTarget({ kind: 'upstream', url: 'http://up' }, parseIdentifier('77.1/A')), {
    code: 'IDN_NOT_RESPONSIBLE',
    message: 'this node does not home prefix 77.1; write to the node that does',
  });
  t.throws(() => writeTarget({ kind: 'none' }, parseIdentifier('77.1/A')), { code: 'IDN_NOT_RESPONSIBLE' });
});

t.test('over HTTP: every route that declares a permission refuses without a token (401) and with the wrong role (403)', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const node = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'node', prefixes: ['88.100.7'] } })).json.secret as string;
  const routes: [string, string, string, unknown?][] = [
    ['record.write', 'PUT', '/api/handles/88.100.7/A', { values: [{ index: 1, type: 'URL', data: 'https://a.example' }] }],
    ['record.write', 'DELETE', '/api/handles/88.100.7/A'],
    ['record.readPrivate', 'GET', '/api/handles?prefix=88.100.7'],
    ['template.write', 'PUT', '/api/templates/88.100.7/1.0', { items: [] }],
    ['event.write', 'POST', '/api/events', { type: 'transformation', inputs: ['88.100.7/A'], outputs: ['88.100.7/B'], eventTime: '2026-01-01T00:00:00Z' }],
    ['lineage.read', 'GET', '/api/lineage/88.100.7/A'],
    ['lineage.read', 'GET', '/api/history/88.100.7/A'],
    ['audit.read', 'GET', '/api/audit'],
    ['audit.read', 'GET', '/api/audit/verify'],
    ['prefix.admin', 'GET', '/api/prefixes'],
    ['prefix.admin', 'POST', '/api/prefixes', { prefix: '88.100.8', owner: { name: 'x' } }],
    ['prefix.admin', 'GET', '/api/prefixes/88.100.7'],
    ['prefix.admin', 'PATCH', '/api/prefixes/88.100.7', { status: 'active' }],
    ['prefix.admin', 'DELETE', '/api/prefixes/88.100.7'],
    ['token.admin', 'GET', '/api/tokens'],
    ['token.admin', 'POST', '/api/tokens', { role: 'auditor' }],
    ['token.admin', 'DELETE', '/api/tokens/tok_x'],
    ['sync.admin', 'GET', '/api/sync/reports'],
    ['sync.admin', 'GET', '/api/sync/outbox'],
    ['sync.report', 'POST', '/api/sync/reports', { kind: 'stats' }],
  ];
  for (const [action, method, path, body] of routes) {
    const opts = body === undefined ? {} : { body };
    const anon = await c.call(method, path, opts);
    t.equal(anon.status, 401, `${method} ${path} (${action}) without a token`);
    t.equal(anon.json.code, 'IDN_AUTH_REQUIRED');
    // A node token may do none of these but send sync reports; a registrar may not send those.
    const wrong = await c.call(method, path, { ...opts, token: action === 'sync.report' ? reg : node });
    t.equal(wrong.status, 403, `${method} ${path} (${action}) with the wrong role`);
    t.equal(wrong.json.code, 'IDN_FORBIDDEN');
  }
  const bulk = await c.call('POST', '/api/prefixes/88.100.7/handles', { body: '', headers: { 'content-type': 'application/x-ndjson' } });
  t.equal(bulk.status, 401, 'bulk without a token');
  const bulkNode = await c.call('POST', '/api/prefixes/88.100.7/handles', { token: node, body: '{}\n', headers: { 'content-type': 'application/x-ndjson' } });
  t.equal(bulkNode.status, 403, 'bulk with a node token');
  t.match(bulkNode.json, { code: 'IDN_FORBIDDEN', message: 'token ' });
});
