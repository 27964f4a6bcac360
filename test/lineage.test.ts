import t from 'tap';
import { ADMIN, type Client, registrar, sampleValues, startNode } from './helpers.js';

async function event(c: Client, token: string, body: unknown) {
  return c.call('POST', '/api/events', { token, body });
}

async function auditor(c: Client, prefixes: string[] = []): Promise<string> {
  const r = await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor', prefixes } });
  return r.json.secret as string;
}

const lineage = (c: Client, token: string, id: string, q = '') => c.call('GET', `/api/lineage/${id}${q}`, { token });

t.test('aggregation and transformation build a transitive, two-way lineage', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  for (const id of ['CAR-1', 'ENGINE-1', 'BEARING-1', 'BATCH-1'])
    t.equal((await c.call('PUT', `/api/handles/88.100.7/${id}`, { token: reg, body: sampleValues })).status, 200);
  const agg = await event(c, reg, {
    type: 'aggregation',
    action: 'ADD',
    parent: '88.100.7/CAR-1',
    children: ['88.100.7/ENGINE-1'],
    eventTime: '2026-03-01T08:00:00Z',
  });
  t.equal(agg.status, 201, agg.text);
  t.match(agg.json, { responseCode: 1, eventId: Number, recordTime: /Z$/, edgesOpened: 1, edgesClosed: 0, flags: [] });
  t.equal(
    (
      await event(c, reg, {
        type: 'aggregation',
        action: 'ADD',
        parent: '88.100.7/engine-1',
        children: ['88.100.7/BEARING-1', '88.100.7/GHOST'],
        eventTime: '2026-02-01T08:00:00+08:00',
      })
    ).json.flags[0].location,
    'unknown',
    'unknown local identifiers are allowed and flagged',
  );
  const tr = await event(c, reg, {
    type: 'transformation',
    inputs: ['88.100.7/BATCH-1', '88.200.5/STEEL-LOT-9'],
    outputs: ['88.100.7/BEARING-1'],
    eventTime: '2026-01-10T00:00:00Z',
    transformationID: 'forge-7',
  });
  t.equal(tr.status, 201, tr.text);
  t.same(tr.json.flags, [{ handle: '88.200.5/STEEL-LOT-9', location: 'foreign' }], 'foreign identifiers are marked foreign');

  const aud = await auditor(c);
  const down = await lineage(c, aud, '88.100.7/car-1', '?direction=down');
  t.equal(down.status, 200, down.text);
  t.equal(down.json.root, '88.100.7/CAR-1', 'root in its registered spelling');
  t.same(
    down.json.nodes.map((n: any) => [n.handle, n.depth, n.location]),
    [
      ['88.100.7/CAR-1', 0, 'local'],
      ['88.100.7/ENGINE-1', 1, 'local'],
      ['88.100.7/BEARING-1', 2, 'local'],
      ['88.100.7/GHOST', 2, 'unknown'],
      ['88.100.7/BATCH-1', 3, 'local'],
      ['88.200.5/STEEL-LOT-9', 3, 'foreign'],
    ],
  );
  t.equal(down.json.edges.length, 5);
  t.match(down.json.edges[0], {
    from: '88.100.7/CAR-1',
    to: '88.100.7/ENGINE-1',
    type: 'aggregation',
    since: '2026-03-01T08:00:00.000Z',
    eventId: agg.json.eventId,
  });
  t.notOk('until' in down.json.edges[0]);
  t.ok(down.json.edges.some((e: any) => e.from === '88.100.7/BEARING-1' && e.to === '88.200.5/STEEL-LOT-9' && e.type === 'transformation'));
  t.equal(down.json.truncated, false);

  const up = await lineage(c, aud, '88.200.5/STEEL-LOT-9', '?direction=up');
  t.same(
    up.json.nodes.map((n: any) => n.handle),
    ['88.200.5/STEEL-LOT-9', '88.100.7/BEARING-1', '88.100.7/ENGINE-1', '88.100.7/CAR-1'],
    'which products a lot went into',
  );
  const both = await lineage(c, aud, '88.100.7/ENGINE-1');
  t.same(
    both.json.nodes.map((n: any) => n.handle).sort(),
    ['88.100.7/BATCH-1', '88.100.7/BEARING-1', '88.100.7/CAR-1', '88.100.7/ENGINE-1', '88.100.7/GHOST', '88.200.5/STEEL-LOT-9'],
    'both is the default',
  );
  const d1 = await lineage(c, aud, '88.100.7/CAR-1', '?direction=down&depth=1');
  t.same(
    d1.json.nodes.map((n: any) => n.handle),
    ['88.100.7/CAR-1', '88.100.7/ENGINE-1'],
  );
  t.equal(d1.json.truncated, true, 'cut by depth');
  const lone = await lineage(c, aud, '88.100.7/NOTHING');
  t.same(lone.json, { root: '88.100.7/NOTHING', nodes: [{ handle: '88.100.7/NOTHING', depth: 0, location: 'unknown' }], edges: [], truncated: false });
});

t.test('edges are valid from ADD to DELETE; asOf picks the time', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const P = '88.100.7/PALLET-1';
  await event(c, reg, { type: 'aggregation', action: 'ADD', parent: P, children: ['88.100.7/BOX-1', '88.100.7/BOX-2'], eventTime: '2026-01-01T00:00:00Z' });
  const del = await event(c, reg, {
    type: 'aggregation',
    action: 'DELETE',
    parent: P,
    children: ['88.100.7/BOX-1', '88.100.7/BOX-9'],
    eventTime: '2026-02-01T00:00:00Z',
  });
  t.match(del.json, { edgesClosed: 1, edgesOpened: 0, unmatched: ['88.100.7/BOX-9'] });
  const aud = await auditor(c);
  const now = await lineage(c, aud, P, '?direction=down');
  t.same(
    now.json.nodes.map((n: any) => n.handle),
    [P, '88.100.7/BOX-2'],
    'unpacked box is gone now',
  );
  const jan = await lineage(c, aud, P, '?direction=down&asOf=2026-01-15T00:00:00Z');
  t.same(
    jan.json.nodes.map((n: any) => n.handle),
    [P, '88.100.7/BOX-1', '88.100.7/BOX-2'],
  );
  t.match(
    jan.json.edges.find((e: any) => e.to === '88.100.7/BOX-1'),
    { since: '2026-01-01T00:00:00.000Z', until: '2026-02-01T00:00:00.000Z' },
  );
  const before = await lineage(c, aud, P, '?direction=down&asOf=2025-12-31T23:59:59Z');
  t.same(before.json.nodes.length, 1, 'nothing packed before the ADD');
  // A DELETE with no children unpacks everything; OBSERVE re-opens what it sees.
  t.match((await event(c, reg, { type: 'aggregation', action: 'DELETE', parent: P, eventTime: '2026-03-01T00:00:00Z' })).json, { edgesClosed: 1 });
  t.equal((await lineage(c, aud, P, '?direction=down')).json.nodes.length, 1);
  t.match((await event(c, reg, { type: 'aggregation', action: 'OBSERVE', parent: P, children: ['88.100.7/BOX-2'], eventTime: '2026-04-01T00:00:00Z' })).json, {
    edgesOpened: 1,
  });
  t.match(
    (await event(c, reg, { type: 'aggregation', action: 'ADD', parent: P, children: ['88.100.7/BOX-2'], eventTime: '2026-04-02T00:00:00Z' })).json,
    { edgesOpened: 0 },
    'already packed',
  );
  t.equal((await lineage(c, aud, P, '?direction=down')).json.nodes.length, 2);
});

t.test('cycles end; the node cap truncates', async (t) => {
  const c = await startNode(t, { lineage: { maxNodes: 5, maxDepth: 20, defaultDepth: 10 } });
  const reg = await registrar(c);
  const at = '2026-01-01T00:00:00Z';
  await event(c, reg, { type: 'aggregation', action: 'ADD', parent: '88.100.7/A', children: ['88.100.7/B'], eventTime: at });
  await event(c, reg, { type: 'aggregation', action: 'ADD', parent: '88.100.7/B', children: ['88.100.7/C'], eventTime: at });
  await event(c, reg, { type: 'aggregation', action: 'ADD', parent: '88.100.7/C', children: ['88.100.7/A'], eventTime: at });
  const aud = await auditor(c);
  const cyc = await lineage(c, aud, '88.100.7/A', '?direction=down&depth=20');
  t.equal(cyc.status, 200);
  t.same(
    cyc.json.nodes.map((n: any) => [n.handle, n.depth]),
    [
      ['88.100.7/A', 0],
      ['88.100.7/B', 1],
      ['88.100.7/C', 2],
    ],
  );
  t.equal(cyc.json.edges.length, 3, 'the edge back to the root is reported once');
  t.equal(cyc.json.truncated, false, 'a cycle is not a truncation');
  const kids = Array.from({ length: 10 }, (_, i) => `88.100.7/K-${i}`);
  await event(c, reg, { type: 'aggregation', action: 'ADD', parent: '88.100.7/WIDE', children: kids, eventTime: at });
  const wide = await lineage(c, aud, '88.100.7/WIDE', '?direction=down');
  t.equal(wide.json.nodes.length, 5, 'lineage.maxNodes');
  t.equal(wide.json.truncated, true);
  t.ok(
    wide.json.edges.every((e: any) => wide.json.nodes.some((n: any) => n.handle === e.to)),
    'no edge to a node left out',
  );
  const tooDeep = await lineage(c, aud, '88.100.7/A', '?depth=21');
  t.equal(tooDeep.status, 400);
  t.match(tooDeep.json, { code: 'IDN_BAD_REQUEST', responseCode: 4, message: /lineage.maxDepth/ });
});

t.test('bad events and bad queries get clear 4xx', async (t) => {
  const c = await startNode(t, { lineage: { eventItemsMax: 3, maxNodes: 100, maxDepth: 50, defaultDepth: 10 } });
  const reg = await registrar(c);
  const at = '2026-01-01T00:00:00Z';
  const cases: Array<[unknown, RegExp]> = [
    [{ type: 'shipping', eventTime: at }, /type must be "aggregation" or "transformation"/],
    [[1, 2], /must be an event object/],
    [{ type: 'aggregation', action: 'PACK', parent: '88.100.7/P', children: ['88.100.7/C'], eventTime: at }, /action must be one of ADD, OBSERVE, DELETE/],
    [{ type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.100.7/C'], eventTime: 'yesterday' }, /eventTime must be an ISO-8601 time/],
    [{ type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.100.7/C'], eventTime: '2026-01-01T00:00:00' }, /with a zone/],
    [{ type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.100.7/C'], eventTime: '2026-13-45T00:00:00Z' }, /eventTime/],
    [
      { type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['a', 'b', 'c', 'd'].map((s) => `88.100.7/${s}`), eventTime: at },
      /4 identifiers; at most 3 .*lineage.eventItemsMax/,
    ],
    [{ type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: [], eventTime: at }, /children must name at least one/],
    [{ type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: 'x', eventTime: at }, /children must be a list/],
    [{ type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['nope'], eventTime: at }, /children\[0\]: /],
    [{ type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.100.7/p'], eventTime: at }, /cannot contain itself/],
    [{ type: 'aggregation', action: 'ADD', parent: '0.NA/88.100.7', children: ['88.100.7/C'], eventTime: at }, /prefix handle/],
    [{ type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.100.7/C'], eventTime: at, inputs: [] }, /unknown field "inputs"/],
    [{ type: 'transformation', inputs: ['88.100.7/A', '88.100.7/B'], outputs: ['88.100.7/C', '88.100.7/D'], eventTime: at }, /4 identifiers; at most 3/],
    [{ type: 'transformation', inputs: ['88.100.7/A'], outputs: ['88.100.7/a'], eventTime: at }, /both an input and an output/],
    [{ type: 'transformation', inputs: ['88.100.7/A'], outputs: ['88.100.7/B'], eventTime: at, bizStep: 7 }, /bizStep must be a string/],
  ];
  for (const [body, message] of cases) {
    const r = await event(c, reg, body);
    t.equal(r.status, 400, JSON.stringify(body));
    t.match(r.json, { responseCode: 202, code: 'IDN_INVALID_VALUE', message }, JSON.stringify(body));
  }
  t.match((await c.call('POST', '/api/events', { token: reg, body: '{"type":' })).json, { code: 'IDN_BODY_UNPARSABLE' });
  t.match((await c.call('POST', '/api/events', { token: reg })).json, { code: 'IDN_BODY_UNPARSABLE' });
  const aud = await auditor(c);
  t.match((await lineage(c, aud, '88.100.7/P', '?direction=sideways')).json, { code: 'IDN_BAD_REQUEST' });
  t.match((await lineage(c, aud, '88.100.7/P', '?asOf=soon')).json, { code: 'IDN_BAD_REQUEST', message: /asOf must be an ISO-8601/ });
  t.match((await lineage(c, aud, '88.100.7/P', '?depth=0')).json, { code: 'IDN_BAD_REQUEST' });
  const bad = await lineage(c, aud, 'no-slash-%ZZ');
  t.equal(bad.status, 400);
  t.equal(bad.json.code, 'IDN_INVALID_IDENTIFIER');
});

t.test('roles: registrars post only in scope, auditors read and write nothing', async (t) => {
  const c = await startNode(t);
  const reg7 = await registrar(c, '88.100.7');
  await registrar(c, '88.100.8');
  const at = '2026-01-01T00:00:00Z';
  const cross = await event(c, reg7, { type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.100.8/C'], eventTime: at });
  t.equal(cross.status, 403);
  t.match(cross.json, { code: 'IDN_FORBIDDEN', responseCode: 401, handle: '88.100.8/C', message: /may not write under 88.100.8/ });
  t.equal(
    (await event(c, reg7, { type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.300.1/FOREIGN'], eventTime: at })).status,
    201,
    'foreign identifiers need no scope',
  );
  t.equal(
    (await event(c, ADMIN, { type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.100.8/C'], eventTime: at })).status,
    201,
    'admin always',
  );
  const aud = await auditor(c);
  t.match((await event(c, aud, { type: 'aggregation', action: 'ADD', parent: '88.100.7/P', children: ['88.100.7/C'], eventTime: at })).json, {
    code: 'IDN_FORBIDDEN',
    message: /registrar or admin/,
  });
  t.equal((await c.call('PUT', '/api/handles/88.100.7/X', { token: aud, body: sampleValues })).status, 403, 'auditors write no records');
  t.equal((await c.call('POST', '/api/events', { body: {} })).status, 401);
  t.equal((await lineage(c, reg7, '88.100.7/P')).status, 403, 'registrars do not read lineage');
  t.equal((await c.call('GET', '/api/lineage/88.100.7/P')).status, 401);
  const scoped = await auditor(c, ['88.100.8']);
  t.equal((await lineage(c, scoped, '88.100.8/C')).status, 200);
  t.match((await lineage(c, scoped, '88.100.7/P')).json, { code: 'IDN_FORBIDDEN', message: /scoped to 88.100.8/ });
  t.equal((await c.call('GET', '/api/audit', { token: scoped })).status, 403, 'the whole log needs an unscoped auditor');
  t.equal((await c.call('GET', '/api/audit', { token: aud })).status, 200);
});

t.test('a scoped auditor sees identifiers outside its scope as opaque nodes, in JSON and on the page', async (t) => {
  const c = await startNode(t);
  await registrar(c);
  await registrar(c, '88.100.8');
  for (const id of ['88.100.7/CAR-S', '88.100.7/BEARING-S', '88.100.8/ENGINE-S', '88.100.8/SECRET-S', '88.100.8/SUB-S'])
    t.equal((await c.call('PUT', `/api/handles/${id}`, { token: ADMIN, body: sampleValues })).status, 200);
  // CAR (in scope) → ENGINE (out) → BEARING (in) and → SECRET (out) → SUB (out).
  const agg = (parent: string, children: string[]) =>
    event(c, ADMIN, { type: 'aggregation', action: 'ADD', parent, children, eventTime: '2026-03-01T08:00:00Z' });
  t.equal((await agg('88.100.7/CAR-S', ['88.100.8/ENGINE-S'])).status, 201);
  t.equal((await agg('88.100.8/ENGINE-S', ['88.100.7/BEARING-S', '88.100.8/SECRET-S'])).status, 201);
  t.equal((await agg('88.100.8/SECRET-S', ['88.100.8/SUB-S'])).status, 201);

  const all = await lineage(c, await auditor(c), '88.100.7/CAR-S', '?direction=down');
  t.same(
    all.json.nodes.map((n: any) => n.handle),
    ['88.100.7/CAR-S', '88.100.8/ENGINE-S', '88.100.7/BEARING-S', '88.100.8/SECRET-S', '88.100.8/SUB-S'],
    'an unscoped auditor sees every identifier',
  );
  t.notOk(
    all.json.nodes.some((n: any) => n.opaque),
    'and nothing opaque',
  );

  const scoped = await auditor(c, ['88.100.7']);
  const r = await lineage(c, scoped, '88.100.7/CAR-S', '?direction=down');
  t.equal(r.status, 200, r.text);
  t.notMatch(r.text, /88\.100\.8|ENGINE-S|SECRET-S|SUB-S/i, 'no identifier outside the scope appears anywhere in the answer');
  t.same(
    r.json.nodes,
    [
      { handle: '88.100.7/CAR-S', depth: 0, location: 'local' },
      { opaque: true, id: 'opaque-1', depth: 1 },
      { handle: '88.100.7/BEARING-S', depth: 2, location: 'local' },
      { opaque: true, id: 'opaque-2', depth: 2 },
      { opaque: true, id: 'opaque-3', depth: 3 },
    ],
    'the shape is kept: out-of-scope nodes are opaque, numbered in answer order; in-scope ones beyond them are named',
  );
  t.same(
    r.json.edges.map((e: any) => [e.from, e.to, e.type ?? null]),
    [
      ['88.100.7/CAR-S', 'opaque-1', 'aggregation'],
      ['opaque-1', '88.100.7/BEARING-S', 'aggregation'],
      ['opaque-1', 'opaque-2', null],
      ['opaque-2', 'opaque-3', null],
    ],
  );
  t.same(r.json.edges[2], { from: 'opaque-1', to: 'opaque-2', opaque: true }, 'an edge between two opaque nodes says nothing more');
  t.match(r.json.edges[0], { since: String, eventId: Number }, 'an edge touching the scope keeps its time and event');
  const up = await lineage(c, scoped, '88.100.7/BEARING-S', '?direction=up');
  t.same(up.json.nodes, [
    { handle: '88.100.7/BEARING-S', depth: 0, location: 'local' },
    { opaque: true, id: 'opaque-1', depth: 1 },
    { handle: '88.100.7/CAR-S', depth: 2, location: 'local' },
  ]);
  const admin = await lineage(c, ADMIN, '88.100.7/CAR-S', '?direction=down');
  t.equal(admin.json.nodes.length, 5);
  t.notOk(
    admin.json.nodes.some((n: any) => n.opaque),
    'admin sees every identifier',
  );

  // The page of a logged-in scoped auditor: opaque boxes, no identifier, no link.
  const login = await fetch(`${c.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${encodeURIComponent(scoped)}&next=/`,
    redirect: 'manual',
  });
  t.equal(login.status, 303);
  const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
  const page = await fetch(`${c.url}/88.100.7/CAR-S?lang=en`, { headers: { accept: 'text/html', cookie } });
  const html = await page.text();
  t.equal(page.status, 200);
  const svg = /<svg[^]*?class="lineage"[^]*?<\/svg>/.exec(html)?.[0] ?? '';
  t.match(svg, /BEARING-S/, 'the graph is drawn, in-scope identifiers named');
  t.notMatch(html, /88\.100\.8|ENGINE-S|SECRET-S|SUB-S/i, 'no out-of-scope identifier on the page');
  t.equal(svg.match(/class="node opaque"/g)?.length, 3, 'three opaque boxes');
  t.equal(svg.match(/not in your scope/g)?.length, 6, 'each says so (text and title)');
  t.equal(svg.match(/<a /g)?.length, 2, 'links only to the two in-scope identifiers');
  t.equal(svg.match(/<path /g)?.length, 4, 'every edge is drawn');
});
