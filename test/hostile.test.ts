import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePrefix } from '../src/identifier/index.js';
import { ADMIN, type Client, registrar, runCli, startNode, tempDir } from './helpers.js';

const NDJSON = 'application/x-ndjson';
const batchItem = { name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string' };
const withBatch = (data: string) => [
  { index: 1001, type: 'TEMPLATE', data: '1' },
  { index: 2001, type: 'batch', data },
];

t.test('evil template patterns: linear-time matching, RE2-only syntax at PUT, old stored patterns fail cleanly', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const put = await c.call('PUT', '/api/templates/88.100.7/1', { token: reg, body: { items: [{ ...batchItem, pattern: '^(a+)+$' }] } });
  t.equal(put.status, 201, put.text);
  // A backtracking engine needs about 2^40 steps for this value; RE2 answers at once.
  const evil = await c.call('PUT', '/api/handles/88.100.7/EVIL', { token: reg, body: withBatch(`${'a'.repeat(40)}!`) });
  t.equal(evil.status, 400, evil.text);
  t.match(evil.json, { code: 'IDN_INVALID_VALUE', message: /item "batchNo", template 1\): "a+!" does not match the pattern \^\(a\+\)\+\$/ });
  const fine = await c.call('PUT', '/api/handles/88.100.7/FINE', { token: reg, body: withBatch('a'.repeat(40)) });
  t.match(fine.json, { responseCode: 1 }, 'a matching value is stored');

  for (const [pattern, why] of [
    ['^(B)-\\1$', /items\[0\]\.pattern of item batchNo uses a backreference; patterns run in linear time \(RE2 syntax\)/],
    ['^(?<b>B)\\k<b>', /pattern of item batchNo uses a backreference/],
    ['^(?=B)', /pattern of item batchNo uses lookaround .*; patterns run in linear time/],
    ['(?<!A)B', /pattern of item batchNo uses lookaround/],
    ['(', /items\[0\]\.pattern is not a valid regular expression \(item batchNo\)/],
  ] as const) {
    const refused = await c.call('PUT', '/api/templates/88.100.7/2', { token: reg, body: { items: [{ ...batchItem, pattern }] } });
    t.equal(refused.status, 400, pattern);
    t.match(refused.json, { code: 'IDN_INVALID_VALUE', message: why }, pattern);
  }
  t.equal((await c.call('GET', '/api/templates/88.100.7/2')).status, 404, 'nothing stored');

  // Anchors, classes and Unicode keep their meaning.
  t.equal(
    (await c.call('PUT', '/api/templates/88.100.7/3', { token: reg, body: { items: [{ ...batchItem, pattern: '^[A-Z]{2}-\\d+\\p{L}?$' }] } })).status,
    201,
  );
  const v3 = (data: string) => [
    { index: 1001, type: 'TEMPLATE', data: '3' },
    { index: 2001, type: 'batch', data },
  ];
  t.match((await c.call('PUT', '/api/handles/88.100.7/V3-A', { token: reg, body: v3('AB-12é') })).json, { responseCode: 1 });
  t.match((await c.call('PUT', '/api/handles/88.100.7/V3-B', { token: reg, body: v3('xAB-12') })).json, { message: /does not match the pattern/ });
  t.match((await c.call('PUT', '/api/handles/88.100.7/V3-C', { token: reg, body: v3('AB-12\n') })).json, { message: /does not match the pattern/ });

  // A version stored by an older idnode with a JS-only pattern: writes under it fail, the node keeps serving.
  const { key } = parsePrefix('88.100.7');
  const body = JSON.stringify({ items: [{ ...batchItem, required: false, state: 'enabled', pattern: '^(B)-\\1$' }] });
  await c.node.store.write({ actor: 'test', action: 'template.create', target: '88.100.7@old' }, async (tx) => {
    await tx.putTemplate({ prefixKey: key, version: 'old', prefix: '88.100.7', bodyJson: body, used: 0, createdAt: tx.at, updatedAt: tx.at });
    return { result: undefined, payload: body, keepPayload: true };
  });
  await c.node.templates.reload();
  const old = await c.call('PUT', '/api/handles/88.100.7/OLD', {
    token: reg,
    body: [
      { index: 1001, type: 'TEMPLATE', data: 'old' },
      { index: 2001, type: 'batch', data: 'B-B' },
    ],
  });
  t.equal(old.status, 400, old.text);
  t.match(old.json, { code: 'IDN_INVALID_VALUE', message: /item "batchNo", template old\): cannot be checked: the pattern .* PUT a new template version/ });
  t.equal((await c.call('GET', '/api/handles/88.100.7/FINE')).status, 200, 'still serving');
});

/** Appends rows of filler so the next `lead` bytes end exactly at byte offset `at`. */
function padTo(parts: string[], at: number, lead: number, n: { i: number }): void {
  for (;;) {
    const row = `88.100.7/PAD-${++n.i},`;
    const room = at - Buffer.byteLength(parts.join('')) - lead - row.length - 1;
    if (room < 1) throw new Error(`cannot pad to ${at}: ${room}`);
    parts.push(`${row}${'x'.repeat(room > 2100 ? 2000 : room)}\n`);
    if (room <= 2100) return;
  }
}

t.test('CSV import: multi-byte text and "" quotes straddling 64 KiB read chunks arrive whole', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'n.db');
  const c = await startNode(t, { db });
  t.equal((await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme' } } })).status, 201);

  const zh = '发动机缸体批次（铸铁）'.repeat(20);
  const quoted = 'say ""hi"" to ""them""';
  const parts = ['handle,2:desc,3:note\n'];
  const n = { i: 0 };
  // The Chinese cell starts one byte before the first chunk ends: its first character straddles it.
  const zhRow = '88.100.7/ZH,';
  padTo(parts, 65536 - 1, zhRow.length, n);
  parts.push(`${zhRow}${zh},plain\n`);
  // The doubled quote's two characters sit either side of the second boundary.
  const qRow = '88.100.7/Q,"say ""hi"" to ';
  padTo(parts, 131072 - 1, qRow.length, n);
  parts.push(`88.100.7/Q,"${quoted}",${zh}\n`);
  const multiLine = parts.join('').split('\n').length; // the CSV line the next record starts on
  parts.push('88.100.7/ML,"two\nlines",x\n', 'not a handle,x,y\n', '88.100.7/LAST,,"中"\n');
  const text = parts.join('');
  const bytes = Buffer.from(text);
  t.equal(bytes.subarray(0, 65536).toString('utf8').endsWith('\ufffd'), true, 'a character is cut by the first chunk boundary');
  t.equal(bytes.subarray(131071, 131073).toString(), '""', 'a doubled quote is cut by the second boundary');
  writeFileSync(join(dir, 'in.csv'), bytes);
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ db }));

  const r = await runCli(['import', join(dir, 'in.csv'), '--prefix', '88.100.7', '--config', join(dir, 'c.json')]);
  t.equal(r.code, 1, r.err);
  t.match(JSON.parse(r.out), { summary: true, total: n.i + 5, ok: n.i + 4, failed: 1 });
  t.match(r.err, new RegExp(`line ${multiLine + 2} not a handle: `), 'the failing record is named by the CSV line it starts on (after a two-line record)');
  // Another process wrote them: the node finds them once it has read the change feed.
  await c.node.changes.caughtUp(await c.node.store.changesHead());

  const get = async (h: string) => (await c.call('GET', `/api/handles/${h}`)).json.values as Array<{ index: number; data: { value: string } }>;
  const zhValues = await get('88.100.7/ZH');
  t.equal(zhValues.find((v) => v.index === 2)?.data.value, zh);
  t.equal(zhValues.find((v) => v.index === 3)?.data.value, 'plain');
  const q = await get('88.100.7/Q');
  t.equal(q.find((v) => v.index === 2)?.data.value, 'say "hi" to "them"');
  t.equal(q.find((v) => v.index === 3)?.data.value, zh);
  t.equal((await get('88.100.7/ML')).find((v) => v.index === 2)?.data.value, 'two\nlines');
  t.same(
    (await get('88.100.7/LAST')).map((v) => [v.index, v.data.value]),
    [[3, '中']],
    'empty cells are left out',
  );
  t.equal((await get('88.100.7/PAD-1')).length, 1);
});

t.test('CSV import: an unclosed quote is refused with its line', async (t) => {
  const dir = tempDir(t, { 'bad.csv': 'handle,2:desc\n88.100.7/A,"open\n' });
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ db: join(dir, 'n.db') }));
  const r = await runCli(['import', join(dir, 'bad.csv'), '--prefix', '88.100.7', '--config', join(dir, 'c.json')]);
  t.not(r.code, 0);
  t.match(r.err, /CSV line \d+: Quote Not Closed/);
});

const lone = '\\ud800'; // the JSON escape text, as a client sends it

async function verified(t: Test, c: Client) {
  t.match((await c.call('GET', '/api/audit/verify', { token: ADMIN })).json, { ok: true, checked: Number }, 'the audit log still verifies');
}

t.test('lone surrogates are refused before they reach the audit log', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const node = (await c.call('POST', '/api/tokens', { token: ADMIN, body: { role: 'node', prefixes: ['88.100'] } })).json.secret as string;
  const refused = async (what: string, method: string, path: string, token: string, body: string, at: RegExp) => {
    const r = await c.call(method, path, { token, body });
    t.equal(r.status, 400, `${what}: ${r.text}`);
    t.match(r.json, { code: 'IDN_INVALID_VALUE', message: /isWellFormed/ }, what);
    t.match(r.json.message, at, `${what}: names where`);
  };
  const report = (key: string) => `{"kind":"prefix","event":"created","prefix":"88.100.8","owner":{"name":"X"},"status":"pending","idempotencyKey":"${key}"}`;
  await refused('sync report', 'POST', '/api/sync/reports', node, report(lone), /the JSON body has a lone surrogate in a string at \$\.idempotencyKey/);
  await verified(t, c);
  const ok = await c.call('POST', '/api/sync/reports', { token: node, body: report('k-1') });
  t.ok(ok.status < 300, ok.text);

  await refused('record value', 'PUT', '/api/handles/88.100.7/S', reg, `[{"index":1,"type":"URL","data":"https://x/${lone}"}]`, /\$\[0\]\.data/);
  await refused('record key', 'PUT', '/api/handles/88.100.7/S', reg, `[{"index":1,"type":"URL","data":"x","${lone}":1}]`, /\$\[0\] \(a key\)/);
  await refused('low half alone', 'PUT', '/api/handles/88.100.7/S', reg, `[{"index":1,"type":"URL","data":"a\\udc00b"}]`, /\$\[0\]\.data/);
  await refused(
    'template',
    'PUT',
    '/api/templates/88.100.7/1',
    reg,
    `{"items":[{"name":"b${lone}","idIndex":2001,"idType":"batch","dataType":"string"}]}`,
    /\$\.items\[0\]\.name/,
  );
  await refused(
    'event',
    'POST',
    '/api/events',
    reg,
    `{"type":"aggregation","action":"ADD","parent":"88.100.7/P${lone}","children":["88.100.7/C"],"eventTime":"2026-01-01T00:00:00Z"}`,
    /\$\.parent/,
  );
  await refused('prefix owner', 'PATCH', '/api/prefixes/88.100.7', ADMIN, `{"owner":{"name":"Acme ${lone}"}}`, /\$\.owner\.name/);
  await refused('new prefix owner', 'POST', '/api/prefixes', ADMIN, `{"prefix":"88.100.9","owner":{"name":"${lone}"}}`, /\$\.owner\.name/);

  // In a path, UTF-8 cannot encode a lone surrogate: its CESU-8 bytes are refused, not stored.
  const inPath = await c.call('PUT', '/api/handles/88.100.7/P%ED%A0%80', { token: reg, body: '[{"index":2,"type":"name","data":"x"}]' });
  t.ok(inPath.status >= 400 && inPath.status < 500, `a lone surrogate in the path: ${inPath.status} ${inPath.text}`);

  // A surrogate pair is a character, not an error.
  const pair = await c.call('PUT', '/api/handles/88.100.7/EMOJI', { token: reg, body: '[{"index":2,"type":"name","data":"\\ud83d\\ude00"}]' });
  t.match(pair.json, { responseCode: 1 }, pair.text);
  t.equal((await c.call('GET', '/api/handles/88.100.7/EMOJI')).json.values[0].data.value, '😀');

  const lines = [
    JSON.stringify({ handle: '88.100.7/B-1', values: [{ index: 2, type: 'name', data: 'one' }] }),
    `{"handle":"88.100.7/B-2","values":[{"index":2,"type":"name","data":"two ${lone}"}]}`,
    JSON.stringify({ handle: '88.100.7/B-3', values: [{ index: 2, type: 'name', data: 'three' }] }),
  ].join('\n');
  const b = await c.call('POST', '/api/prefixes/88.100.7/handles', { token: reg, body: lines, headers: { 'content-type': NDJSON } });
  const results = b.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.match(results[0], { line: 1, responseCode: 1 });
  t.match(results[1], { line: 2, message: /line 2 has a lone surrogate in a string at \$\.values\[0\]\.data; .*isWellFormed/ });
  t.not(results[1].responseCode, 1);
  t.match(results[2], { line: 3, responseCode: 1 });
  t.match(results.at(-1), { summary: true, total: 3, ok: 2, failed: 1 });
  t.equal((await c.call('GET', '/api/handles/88.100.7/B-3')).status, 200, 'the other lines commit');
  await verified(t, c);
});

t.test('seed files with a lone surrogate are refused before anything is written', async (t) => {
  const dir = tempDir(t, {
    'prefixes.json': JSON.stringify([{ prefix: '88.100.7', owner: { name: 'Acme' } }]),
    'records.ndjson': `${JSON.stringify({ handle: '88.100.7/OK', values: [{ index: 2, type: 'name', data: 'ok' }] })}\n{"handle":"88.100.7/BAD","values":[{"index":2,"type":"name","data":"${lone}"}]}\n`,
  });
  const c = await startNode(t);
  const { seedIfEmpty } = await import('../src/registry/seed.js');
  await t.rejects(seedIfEmpty(c.node, dir), {
    code: 'IDN_INVALID_VALUE',
    message: /records\.ndjson line 2: the line has a lone surrogate in a string at \$\.values\[0\]\.data/,
  });
  writeFileSync(join(dir, 'records.ndjson'), Buffer.from([0x7b, 0xff, 0x7d, 0x0a]));
  await t.rejects(seedIfEmpty(c.node, dir), { message: /records\.ndjson is not valid UTF-8/ });
  t.equal(await c.node.store.totalRecords(), 0, 'nothing seeded');
  await verified(t, c);
});

t.test('idnode import: an NDJSON line with a lone surrogate fails alone', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'n.db');
  const c = await startNode(t, { db });
  t.equal((await c.call('POST', '/api/prefixes', { token: ADMIN, body: { prefix: '88.100.7', owner: { name: 'Acme' } } })).status, 201);
  const good = (h: string) => JSON.stringify({ handle: h, values: [{ index: 2, type: 'name', data: h }] });
  writeFileSync(
    join(dir, 'in.ndjson'),
    `${good('88.100.7/I-1')}\n{"handle":"88.100.7/I-2","values":[{"index":2,"type":"name","data":"${lone}"}]}\n${good('88.100.7/I-3')}\n`,
  );
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ db }));
  const r = await runCli(['import', join(dir, 'in.ndjson'), '--prefix', '88.100.7', '--config', join(dir, 'c.json')]);
  t.equal(r.code, 1, r.err);
  t.match(r.err, /line 2 has a lone surrogate in a string at \$\.values\[0\]\.data/);
  t.match(JSON.parse(r.out), { total: 3, ok: 2, failed: 1 });
  await c.node.changes.caughtUp(await c.node.store.changesHead());
  t.equal((await c.call('GET', '/api/handles/88.100.7/I-3')).status, 200);
  await verified(t, c);
});
