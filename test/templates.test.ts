import t from 'tap';
import { ADMIN, type Client, registrar, startNode } from './helpers.js';

const items = [
  { name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string', required: true, maxLength: 12, pattern: '^B-' },
  { name: 'quantity', idIndex: 2002, idType: 'quantity', dataType: 'number' },
  { name: 'produced', idIndex: 2003, idType: 'productionDate', dataType: 'date', required: true },
  { name: 'manual', idIndex: 2004, idType: 'URL', dataType: 'url' },
  { name: 'parts', idIndex: 2005, idType: 'parts', dataType: 'reference', referenceType: 'many' },
  { name: 'supplier', idIndex: 2006, idType: 'supplier', dataType: 'reference' },
];

const rec = (version: string, extra: Array<Record<string, unknown>> = [], drop: number[] = []) => ({
  values: [
    { index: 1, type: 'URL', data: 'https://acme.example/p/1' },
    { index: 1001, type: 'TEMPLATE', data: version },
    { index: 2001, type: 'batch', data: 'B-0001' },
    { index: 2003, type: 'productionDate', data: '2026-03-01' },
    ...extra,
  ].filter((v) => !drop.includes(v.index as number)),
});

async function put(c: Client, token: string, id: string, body: unknown) {
  return c.call('PUT', `/api/handles/${id}`, { token, body });
}

t.test('templates: define, read, validate every rule on write, immutable once used', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const created = await c.call('PUT', '/api/templates/88.100.7/1.0', { token: reg, body: { name: 'Engine parts', industryCode: 'C3670', items } });
  t.equal(created.status, 201, created.text);
  t.match(created.json, { prefix: '88.100.7', version: '1.0', used: false, items: [{ name: 'batchNo', state: 'enabled', required: true }] });
  t.equal(created.json.items[4].referenceType, 'many');
  t.equal(created.json.items[5].referenceType, 'one', 'reference items default to one');
  t.equal((await c.call('GET', '/api/templates/88.100.7/1.0')).json.name, 'Engine parts', 'anyone may read a template');
  t.equal((await c.call('GET', '/api/templates/88.100.7')).json.templates.length, 1);
  t.match((await c.call('GET', '/api/templates/88.100.7/9')).json, { code: 'IDN_TEMPLATE_NOT_FOUND', responseCode: 100 });
  t.equal((await c.call('PUT', '/api/templates/88.100.7/1.0', { token: reg, body: { items } })).status, 200, 'unused: may change');

  const writes: Array<[unknown, RegExp]> = [
    [{ values: [{ index: 1, type: 'URL', data: 'x' }] }, /uses metadata templates \(versions 1.0\): add \{"index": 1001/],
    [rec('7'), /names template version "7", which prefix 88.100.7 does not have/],
    [
      { values: [...rec('1.0').values.filter((v) => v.index !== 1001), { index: 1001, type: 'VERSION', data: '1.0' }] },
      /index 1001 is reserved for the template version/,
    ],
    [rec('1.0', [], [2001]), /index 2001 \(item "batchNo", template 1.0\) is required and missing/],
    [
      rec('1.0', [], [2001]).values.concat([{ index: 2001, type: 'lot', data: 'B-1' }]),
      /index 2001 \(item "batchNo", template 1.0\): type must be "batch", got "lot"/,
    ],
    [rec('1.0', [], [2001]).values.concat([{ index: 2001, type: 'batch', data: 'B-0123456789012' }]), /15 characters; at most 12/],
    [rec('1.0', [], [2001]).values.concat([{ index: 2001, type: 'batch', data: 'X-1' }]), /"X-1" does not match the pattern \^B-/],
    [rec('1.0', [], [2001]).values.concat([{ index: 2001, type: 'batch', data: { format: 'hex', value: 'ab' } }]), /data must be a string value/],
    [rec('1.0', [{ index: 2002, type: 'quantity', data: 'ten' }]), /index 2002 \(item "quantity".*"ten" is not a number/],
    [rec('1.0', [], [2003]).values.concat([{ index: 2003, type: 'productionDate', data: '2026-02-30x' }]), /is not a date/],
    [rec('1.0', [{ index: 2004, type: 'URL', data: 'ftp://x' }]), /"ftp:\/\/x" is not an http\(s\) URL/],
    [rec('1.0', [{ index: 2005, type: 'parts', data: '88.100.7/P-1, nope' }]), /index 2005 .*names an invalid identifier/],
    [rec('1.0', [{ index: 2006, type: 'supplier', data: '88.200/S-1,88.200/S-2' }]), /must name one identifier/],
    [rec('1.0', [{ index: 2006, type: 'supplier', data: ' ' }]), /index 2006 .*invalid identifier/],
    [rec('1.0', [{ index: 2099, type: 'x', data: 'y' }]), /index 2099 is not an item of template 1.0/],
  ];
  for (const [body, message] of writes) {
    const r = await put(c, reg, '88.100.7/E-1', body);
    t.equal(r.status, 400, String(message));
    t.match(r.json, { code: 'IDN_INVALID_VALUE', responseCode: 202, handle: '88.100.7/E-1', message }, String(message));
  }
  t.equal((await c.call('GET', '/api/handles/88.100.7/E-1')).status, 404, 'nothing was written');

  const good = await put(
    c,
    reg,
    '88.100.7/E-1',
    rec('1.0', [
      { index: 2002, type: 'quantity', data: '-12.5' },
      { index: 2004, type: 'URL', data: 'https://acme.example/manual.pdf' },
      { index: 2005, type: 'parts', data: '88.100.7/P-1, 88.100.7/P-2' },
      { index: 2006, type: 'supplier', data: '88.200/S-1' },
    ]),
  );
  t.equal(good.status, 200, good.text);
  t.equal((await c.call('GET', '/api/templates/88.100.7/1.0')).json.used, true);
  const locked = await c.call('PUT', '/api/templates/88.100.7/1.0', { token: reg, body: { items } });
  t.equal(locked.status, 409);
  t.match(locked.json, { code: 'IDN_TEMPLATE_IN_USE', responseCode: 101, message: /PUT a new version/ });
  t.match(
    (await c.call('DELETE', '/api/handles/88.100.7/E-1?index=2001', { token: reg })).json,
    { code: 'IDN_INVALID_VALUE', message: /required and missing/ },
    'removing a required value is refused',
  );

  // Reference items are lineage edges typed by the item name, kept in step with the record.
  const aud = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'auditor' } })).json.secret;
  const lin = await c.call('GET', '/api/lineage/88.100.7/E-1?direction=down', { token: aud });
  t.same(lin.json.edges.map((e: any) => [e.to, e.type, e.eventId]).sort(), [
    ['88.100.7/P-1', 'parts', 0],
    ['88.100.7/P-2', 'parts', 0],
    ['88.200/S-1', 'supplier', 0],
  ]);
  await put(c, reg, '88.100.7/E-1?index=2005', [{ index: 2005, type: 'parts', data: '88.100.7/P-2' }]);
  const after = await c.call('GET', '/api/lineage/88.100.7/E-1?direction=down', { token: aud });
  t.same(after.json.nodes.map((n: any) => n.handle).sort(), ['88.100.7/E-1', '88.100.7/P-2', '88.200/S-1'], 'a removed reference closes its edge');
});

t.test('template versions: items are disabled, never deleted; item rules; who may define', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await c.call('PUT', '/api/templates/88.100.7/1', { token: reg, body: { items } })).status, 201);
  const dropped = await c.call('PUT', '/api/templates/88.100.7/2', { token: reg, body: { items: items.slice(1) } });
  t.match(dropped.json, {
    code: 'IDN_INVALID_VALUE',
    message: /item "batchNo" \(idIndex 2001\) of version 1 is missing; items are never deleted: keep it with "state": "disabled"/,
  });
  t.match(
    (await c.call('PUT', '/api/templates/88.100.7/1', { token: reg, body: { items: items.slice(1) } })).json,
    { code: 'IDN_INVALID_VALUE', message: /never deleted/ },
    'not even from an unused version',
  );
  const v2 = await c.call('PUT', '/api/templates/88.100.7/2', { token: reg, body: { items: [{ ...items[0], state: 'disabled' }, ...items.slice(1)] } });
  t.equal(v2.status, 201, v2.text);
  t.equal((await put(c, reg, '88.100.7/E-2', rec('2', [], [2001]))).status, 200, 'a disabled item is not required');
  t.equal(
    (await put(c, reg, '88.100.7/E-3', rec('2', [], [2001]).values.concat([{ index: 2001, type: 'anything', data: 'old data' }]))).status,
    200,
    'nor checked',
  );
  t.equal((await put(c, reg, '88.100.7/E-4', rec('1'))).status, 200, 'older versions stay usable');

  const bad: Array<[unknown, RegExp]> = [
    [{ items: [] }, /items must be a list of 1 to 500/],
    [{ items: 'x' }, /items must be a list/],
    [[1], /the body must be \{"items"/],
    [{ items, owner: 'x' }, /unknown field "owner"/],
    [{ items, name: 5 }, /name must be a string/],
    [{ items: [1] }, /items\[0\] must be an object/],
    [{ items: [{ ...items[0], idIndex: 1999 }] }, /items\[0\].idIndex must be an integer from 2000/],
    [{ items: [{ ...items[0], name: '' }] }, /items\[0\].name must be 1 to 64/],
    [{ items: [{ ...items[0], idType: 7 }] }, /idType must be the value type/],
    [{ items: [{ ...items[0], dataType: 'blob' }] }, /dataType must be one of string, number, date, url, reference/],
    [{ items: [{ ...items[0], required: 'yes' }] }, /required must be true or false/],
    [{ items: [{ ...items[0], state: 'gone' }] }, /state must be "enabled" or "disabled"/],
    [{ items: [{ ...items[0], minLength: 5, maxLength: 2 }] }, /minLength must not exceed maxLength/],
    [{ items: [{ ...items[0], minLength: -1 }] }, /minLength must be a whole number/],
    [{ items: [{ ...items[0], pattern: '(' }] }, /pattern is not a valid regular expression/],
    [{ items: [{ ...items[0], pattern: 5 }] }, /pattern must be a regular expression/],
    [{ items: [{ ...items[0], referenceType: 'many' }] }, /referenceType is "one" or "many", for dataType reference only/],
    [{ items: [{ ...items[0], colour: 'red' }] }, /items\[0\] has an unknown field "colour"/],
    [{ items: [items[0], { ...items[1], name: 'batchNo' }] }, /item name "batchNo" appears twice/],
    [{ items: [items[0], { ...items[1], idIndex: 2001 }] }, /idIndex 2001 appears twice/],
  ];
  for (const [body, message] of bad) {
    const r = await c.call('PUT', '/api/templates/88.100.7/9', { token: reg, body });
    t.equal(r.status, 400, String(message));
    t.match(r.json, { code: 'IDN_INVALID_VALUE', message }, String(message));
  }
  t.match((await c.call('PUT', '/api/templates/88.100.7/bad version', { token: reg, body: { items } })).json, {
    code: 'IDN_BAD_REQUEST',
    message: /template version is 1 to 32/,
  });
  t.match((await c.call('PUT', '/api/templates/88..7/1', { token: reg, body: { items } })).json, { code: 'IDN_BAD_REQUEST' });
  t.match((await c.call('GET', '/api/templates/88..7')).json, { code: 'IDN_BAD_REQUEST' });
  t.match((await c.call('PUT', '/api/templates/99.1/1', { token: reg, body: { items } })).json, { code: 'IDN_NOT_RESPONSIBLE', responseCode: 301 });
  t.equal((await c.call('PUT', '/api/templates/88.100.7/9', { body: { items } })).status, 401);
  const other = await registrar(c, '88.100.8');
  t.equal((await c.call('PUT', '/api/templates/88.100.7/9', { token: other, body: { items } })).status, 403);
  t.match((await c.call('PUT', '/api/templates/88.100.7/9', { token: reg })).json, { code: 'IDN_BODY_UNPARSABLE' });
  t.equal((await c.call('PUT', '/api/templates/88.100.7/9', { token: ADMIN, body: { items } })).status, 201, 'admin anywhere under homed');
});
