import t from 'tap';
import { connect } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ADMIN, type Client, registrar, startNode, TEST_ENGINE } from './helpers.js';
import { tamper } from './tamper.js';
import { jsonTooDeep, ndjsonLines } from '../src/registry/bulk.js';

const NDJSON = 'application/x-ndjson';
const line = (handle: string, value = 'x', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ handle, values: [{ index: 1, type: 'URL', data: `https://acme.example/${value}` }], ...extra });

async function bulk(c: Client, token: string | undefined, body: string, q = '', prefix = '88.100.7') {
  const r = await c.call('POST', `/api/prefixes/${prefix}/handles${q}`, { ...(token ? { token } : {}), body, headers: { 'content-type': NDJSON } });
  const lines =
    r.text.trim() === ''
      ? []
      : r.text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
  return { status: r.status, json: r.json, lines, summary: lines.at(-1), results: lines.slice(0, -1) };
}

async function auditActions(c: Client) {
  return ((await c.call('GET', '/api/audit?limit=1000', { token: ADMIN })).json.entries as any[]).map((e) => e.action);
}

t.test('bulk: one result per line, partial failures, summary, chunked commits with one audit entry each', async (t) => {
  const c = await startNode(t, { bulk: { chunkSize: 3 }, limits: { bulkLineMaxBytes: 1024 } });
  const reg = await registrar(c);
  const input = [
    line('88.100.7/A-1'),
    'not json',
    line('88.200/ELSEWHERE'),
    '',
    JSON.stringify({ handle: '88.100.7/A-2', values: [] }),
    JSON.stringify({ handle: '88.100.7/A-3', values: [{ index: 'one', type: 'URL', data: 'x' }], colour: 'red' }),
    line('88.100.7/A-4', 'y'.repeat(2000)),
    '[1]',
    line('88.100.7/A-5'),
    line('0.NA/88.100.7'),
    line('88.100.7/A-1'),
    line('bad id'),
    line('88.100.7/A-6'),
  ].join('\n');
  const r = await bulk(c, reg, `${input}\n`);
  t.equal(r.status, 200);
  t.same(
    r.results.map((x: any) => [x.line, x.responseCode]),
    [
      [1, 1],
      [2, 4],
      [3, 202],
      [5, 202],
      [6, 202],
      [7, 4],
      [8, 202],
      [9, 1],
      [10, 401],
      [11, 1],
      [12, 102],
      [13, 1],
    ],
    'blank lines are skipped, every other line answered in order',
  );
  t.match(r.results[1].message, /line 2 is not JSON/);
  t.match(r.results[2], { handle: '88.200/ELSEWHERE', message: /not under prefix 88.100.7/ });
  t.match(r.results[3].message, /no values/);
  t.match(r.results[4].message, /values\[0\]\.index must be an integer .*got "one"/);
  t.match(r.results[5].message, /line 7 has \d+ bytes; at most 1024 .*limits.bulkLineMaxBytes/);
  t.match(r.results[8].message, /prefix handle/);
  t.equal(r.results[9].message, 'unchanged', 'the same record again, in a later chunk');
  t.match(r.results[10].message, /has no "\/"/);
  t.same(r.summary, { summary: true, total: 12, ok: 4, failed: 8, committedThroughLine: 13 });
  t.equal((await c.call('GET', '/api/handles/88.100.7/A-6')).status, 200);
  const actions = await auditActions(c);
  t.equal(actions.filter((a) => a === 'bulk.chunk').length, 3, 'chunks with something to write make one entry each');
  t.same((await c.call('GET', '/api/audit/verify', { token: ADMIN })).json.ok, true, 'the chunk digests verify against the record versions');
  const h = await c.call('GET', '/api/history/88.100.7/A-1', { token: ADMIN });
  t.match(h.json.versions, [{ version: 1, action: 'bulk.chunk' }]);
});

t.test('bulk: overwrite=false makes a re-sent file idempotent; onError=chunk commits nothing of a bad chunk', async (t) => {
  const c = await startNode(t, { bulk: { chunkSize: 2 } });
  const reg = await registrar(c);
  const file = ['88.100.7/B-1', '88.100.7/B-2', '88.100.7/B-3'].map((h) => line(h)).join('\n');
  t.same((await bulk(c, reg, file, '?overwrite=false')).summary, { summary: true, total: 3, ok: 3, failed: 0, committedThroughLine: 3 });
  const before = (await auditActions(c)).length;
  const again = await bulk(c, reg, file, '?overwrite=false');
  t.same(
    again.results.map((x: any) => x.message),
    ['unchanged', 'unchanged', 'unchanged'],
    'identical records count as unchanged',
  );
  t.equal(again.summary.ok, 3);
  t.equal((await auditActions(c)).length, before, 'and write nothing');
  const changed = await bulk(c, reg, [line('88.100.7/B-1', 'other'), line('88.100.7/B-4')].join('\n'), '?overwrite=false');
  t.same(
    changed.results.map((x: any) => x.responseCode),
    [101, 1],
  );
  t.match(changed.results[0].message, /already exists with other values; send overwrite=true/);
  const twice = await bulk(c, reg, [line('88.100.7/B-9'), line('88.100.7/b-9', 'z')].join('\n'));
  t.same(
    twice.results.map((x: any) => x.responseCode),
    [1, 101],
  );
  t.match(twice.results[1].message, /appears earlier in the same chunk/);
  const replaced = await bulk(c, reg, line('88.100.7/B-1', 'other'));
  t.same(replaced.results[0], { line: 1, handle: '88.100.7/B-1', responseCode: 1, message: 'replaced' });

  const atomic = await bulk(c, reg, [line('88.100.7/C-1'), 'oops', line('88.100.7/C-2'), line('88.100.7/C-3')].join('\n'), '?onError=chunk');
  t.same(
    atomic.results.map((x: any) => [x.line, x.responseCode]),
    [
      [1, 2],
      [2, 4],
      [3, 1],
      [4, 1],
    ],
  );
  t.match(atomic.results[0].message, /not committed: line 2 of this chunk failed \(onError=chunk\)/);
  t.equal((await c.call('GET', '/api/handles/88.100.7/C-1')).status, 404, 'the failed chunk left nothing behind');
  t.equal((await c.call('GET', '/api/handles/88.100.7/C-3')).status, 200, 'the next chunk was committed');
});

t.test('bulk: a client cut off mid-stream keeps the committed chunks and loses only the open one', async (t) => {
  const c = await startNode(t, { bulk: { chunkSize: 2 } });
  const reg = await registrar(c);
  const { hostname, port } = new URL(c.url);
  // The node's side of the upload: closed once the node has seen the client go.
  const serverSideClosed = new Promise<void>((resolve) =>
    c.node.app.server.once('request', (_req: IncomingMessage, res: ServerResponse) => res.once('close', () => resolve())),
  );
  const sock = connect(Number(port), hostname);
  await new Promise((r) => sock.once('connect', r));
  let answer = '';
  const line4 = new Promise<void>((resolve) =>
    sock.on('data', (d) => {
      answer += String(d);
      if (answer.includes('"line":4')) resolve();
    }),
  );
  sock.write(
    `POST /api/prefixes/88.100.7/handles HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${reg}\r\nContent-Type: ${NDJSON}\r\nTransfer-Encoding: chunked\r\n\r\n`,
  );
  const send = (text: string) => sock.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
  send(`${[1, 2, 3, 4, 5].map((i) => line(`88.100.7/D-${i}`)).join('\n')}\n${line('88.100.7/D-6').slice(0, 20)}`);
  await line4;
  t.match(answer, /"line":4,"handle":"88.100.7\/D-4","responseCode":1/, 'results stream while the upload goes on');
  sock.destroy();
  await serverSideClosed;
  for (const i of [1, 2, 3, 4]) t.equal((await c.call('GET', `/api/handles/88.100.7/D-${i}`)).status, 200, `D-${i} committed`);
  t.equal((await c.call('GET', '/api/handles/88.100.7/D-5')).status, 404, 'D-5 was in the open chunk');
  t.equal((await c.call('GET', '/healthz')).status, 200, 'the node carries on');
  const resumed = await bulk(c, reg, [5, 6].map((i) => line(`88.100.7/D-${i}`)).join('\n'), '?overwrite=false');
  t.equal(resumed.summary.ok, 2, 'resuming after committedThroughLine finishes the file');
});

t.test('bulk: guards before the body is read, templates per line, and a long stream', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  t.equal((await bulk(c, undefined, line('88.100.7/E-1'))).status, 401);
  const other = await registrar(c, '88.100.8');
  t.match((await bulk(c, other, line('88.100.7/E-1'))).json, { code: 'IDN_FORBIDDEN' });
  t.match((await bulk(c, reg, line('99.1/E-1'), '', '99.1')).json, { code: 'IDN_NOT_RESPONSIBLE', responseCode: 301 });
  t.match((await bulk(c, reg, line('88.100.7/E-1'), '', '88..7')).json, { code: 'IDN_INVALID_IDENTIFIER' });
  const json = await c.call('POST', '/api/prefixes/88.100.7/handles', { token: reg, body: [line('88.100.7/E-1')] });
  t.match(json.json, { code: 'IDN_BAD_REQUEST', message: /application\/x-ndjson/ });
  t.match((await bulk(c, reg, line('88.100.7/E-1'), '?onError=maybe')).json, { code: 'IDN_BAD_REQUEST' });
  await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'suspended' } });
  t.match((await bulk(c, reg, line('88.100.7/E-1'))).json, { code: 'IDN_PREFIX_NOT_ACTIVE' });
  await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'active' } });

  await c.call('PUT', '/api/templates/88.100.7/1', {
    token: reg,
    body: { items: [{ name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string', required: true }] },
  });
  const tv = (h: string, withBatch: boolean) =>
    JSON.stringify({ handle: h, values: [{ index: 1001, type: 'TEMPLATE', data: '1' }, ...(withBatch ? [{ index: 2001, type: 'batch', data: 'B-1' }] : [])] });
  const tpl = await bulk(c, reg, [tv('88.100.7/T-1', true), tv('88.100.7/T-2', false)].join('\n'));
  t.same(
    tpl.results.map((x: any) => x.responseCode),
    [1, 202],
  );
  t.match(tpl.results[1], { handle: '88.100.7/T-2', message: /index 2001 \(item "batchNo", template 1\) is required and missing/ });

  const n = 5000;
  const big = Array.from({ length: n }, (_, i) => line(`88.100.8/BIG-${i}`)).join('\n');
  const r = await bulk(c, other, big, '', '88.100.8');
  t.same(r.summary, { summary: true, total: n, ok: n, failed: 0, committedThroughLine: n });
  t.equal((await c.call('GET', '/api/handles?prefix=88.100.8&pageSize=0', { token: other })).json.totalCount, n);
  t.equal((await c.call('GET', '/api/audit/verify', { token: ADMIN })).json.ok, true);
});

t.test(
  'bulk: a line refused inside the write fails alone (onError=line) and refuses its chunk (onError=chunk)',
  { skip: TEST_ENGINE === 'postgres' && 'a SQLite trigger makes the store refuse rows' },
  async (t) => {
    const c = await startNode(t, { bulk: { chunkSize: 7 } });
    const reg = await registrar(c);
    await c.call('PUT', '/api/templates/88.100.7/1', {
      token: reg,
      body: {
        items: [
          { name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string', required: true },
          { name: 'made', idIndex: 2002, idType: 'made', dataType: 'reference' },
        ],
      },
    });
    const rec = (h: string, opts: { batch?: string | null; ref?: string; url?: string } = {}) =>
      JSON.stringify({
        handle: h,
        values: [
          { index: 1, type: 'URL', data: opts.url ?? 'https://acme.example/x' },
          { index: 1001, type: 'TEMPLATE', data: '1' },
          ...(opts.batch === null ? [] : [{ index: 2001, type: 'batch', data: opts.batch ?? 'B-1' }]),
          ...(opts.ref !== undefined ? [{ index: 2002, type: 'made', data: opts.ref }] : []),
        ],
      });
    t.equal((await bulk(c, reg, rec('88.100.7/S-0'))).summary.ok, 1, 'an existing record for the conflict');
    // The store refuses an oversized record (before anything of the line is written) and an
    // edge to one identifier (after the line's record row was written: only a rollback undoes it).
    const db = tamper(c.config.db);
    db.refuseInserts('big_record', 'records', 'length(NEW.values_json) > 2000');
    db.refuseInserts('bad_edge', 'edges', "NEW.to_key = '88.100.7/forbidden'");
    db.close();
    const file = [
      rec('88.100.7/S-1'),
      rec('88.100.7/S-2', { url: `https://acme.example/${'y'.repeat(3000)}` }),
      rec('88.100.7/S-3', { ref: '88.100.7/FORBIDDEN' }),
      rec('88.100.7/S-0', { batch: 'B-2' }),
      rec('88.100.7/S-1'),
      rec('88.100.7/S-4', { ref: '88.100.7/ok' }),
      rec('88.100.7/S-5'),
    ].join('\n');
    const before = (await auditActions(c)).filter((a) => a === 'bulk.chunk').length;
    const r = await bulk(c, reg, file, '?overwrite=false');
    t.same(
      r.results.map((x: any) => [x.line, x.responseCode]),
      [
        [1, 1],
        [2, 2],
        [3, 2],
        [4, 101],
        [5, 101],
        [6, 1],
        [7, 1],
      ],
      'each refused line fails alone, the others of the chunk commit',
    );
    t.match(r.results[1], { handle: '88.100.7/S-2', message: /line 2 \(88.100.7\/S-2\) could not be stored: the store refused it/ });
    t.match(r.results[2], { handle: '88.100.7/S-3', message: /line 3 .* could not be stored/ });
    t.match(r.results[3].message, /already exists with other values/);
    t.match(r.results[4].message, /appears earlier in the same chunk/);
    t.same(r.summary, { summary: true, total: 7, ok: 3, failed: 4, committedThroughLine: 7 });
    for (const [h, status] of [
      ['S-1', 200],
      ['S-2', 404],
      ['S-3', 404],
      ['S-4', 200],
      ['S-5', 200],
    ] as const)
      t.equal((await c.call('GET', `/api/handles/88.100.7/${h}`)).status, status, `${h} ${status === 200 ? 'committed' : 'left nothing behind'}`);
    t.match((await c.call('GET', '/api/handles/88.100.7/S-0', { token: reg })).json.values, [
      { index: 1 },
      { index: 1001 },
      { index: 2001, data: { value: 'B-1' } },
    ]);
    t.equal((await auditActions(c)).filter((a) => a === 'bulk.chunk').length, before + 1, 'one audit entry for the chunk still');
    t.equal((await c.call('GET', '/api/audit/verify', { token: ADMIN })).json.ok, true, 'no version row of a refused line is left in the chain');
    t.equal((await c.call('GET', '/api/history/88.100.7/S-3', { token: ADMIN })).status, 404, 'S-3 has no history');
    const down = await c.call('GET', '/api/lineage/88.100.7/S-4?direction=down', { token: ADMIN });
    t.match(down.json.nodes, [{ handle: '88.100.7/S-4' }, { handle: '88.100.7/ok' }], 'the committed line kept its reference edge');

    // onError=chunk: a line refused inside the write refuses its chunk, with its own error.
    const atomic = await bulk(
      c,
      reg,
      [rec('88.100.7/U-1'), rec('88.100.7/U-2', { ref: '88.100.7/forbidden' }), rec('88.100.7/U-3')].join('\n'),
      '?onError=chunk',
    );
    t.same(
      atomic.results.map((x: any) => [x.line, x.responseCode]),
      [
        [1, 2],
        [2, 2],
        [3, 2],
      ],
    );
    t.match(atomic.results[1].message, /line 2 .* could not be stored/);
    t.match(atomic.results[0].message, /not committed: line 2 of this chunk failed \(onError=chunk\)/);
    t.equal((await c.call('GET', '/api/handles/88.100.7/U-1')).status, 404, 'the refused chunk left nothing behind');
    const conflict = await bulk(c, reg, [rec('88.100.7/V-1'), rec('88.100.7/S-0', { batch: 'B-3' })].join('\n'), '?onError=chunk&overwrite=false');
    t.same(
      conflict.results.map((x: any) => [x.line, x.responseCode]),
      [
        [1, 2],
        [2, 101],
      ],
      'a conflict is a bad line too',
    );
    t.equal((await c.call('GET', '/api/handles/88.100.7/V-1')).status, 404);
    t.equal((await auditActions(c)).filter((a) => a === 'bulk.chunk').length, before + 1, 'refused chunks write no audit entry');
  },
);

t.test('bulk: a template version replaced between reading a line and writing it is checked again', async (t) => {
  const c = await startNode(t);
  const reg = await registrar(c);
  const item = (pattern?: string) => ({ items: [{ name: 'batchNo', idIndex: 2001, idType: 'batch', dataType: 'string', ...(pattern ? { pattern } : {}) }] });
  t.equal((await c.call('PUT', '/api/templates/88.100.7/1', { token: reg, body: item() })).status, 201);
  const rec = (h: string, batch: string) =>
    JSON.stringify({
      handle: h,
      values: [
        { index: 1001, type: 'TEMPLATE', data: '1' },
        { index: 2001, type: 'batch', data: batch },
      ],
    });
  const results: any[] = [];
  // The splitter asks for a second piece only once the first piece's lines are read (and checked).
  async function* input() {
    yield `${rec('88.100.7/R-1', 'B-1')}\n${rec('88.100.7/R-2', 'X-2')}\n`;
    // Version 1 is not used yet (nothing is committed), so it may still change: batches must start with X now.
    await c.node.templates.put('88.100.7', '1', item('^X'), 'test');
    yield `${rec('88.100.7/R-3', 'B-3')}\n`;
  }
  const summary = await c.node.bulk.run(input(), { prefixKey: '88.100.7', overwrite: true, onError: 'line', actor: 'test' }, (r) => void results.push(r));
  t.same(
    results.slice(0, -1).map((r) => [r.line, r.responseCode]),
    [
      [1, 202],
      [2, 1],
      [3, 202],
    ],
  );
  t.match(results[0].message, /index 2001 \(item "batchNo", template 1\): "B-1" does not match the pattern \^X/);
  t.match(summary, { ok: 1, failed: 2 });
  t.equal((await c.call('GET', '/api/handles/88.100.7/R-1')).status, 404, 'a line read under the old version is not stored');
  t.equal((await c.call('GET', '/api/handles/88.100.7/R-2')).status, 200);
});

t.test('bulk: the NDJSON splitter and the nesting check, at their edges', async (t) => {
  t.equal(jsonTooDeep('[[1]]', 2), false);
  t.equal(jsonTooDeep('[[[1]]]', 2), true);
  t.equal(jsonTooDeep('{"a":[{}]}', 2), true);
  t.equal(jsonTooDeep('[[],[],[],{}]', 2), false, 'more brackets than the limit, none deeper');
  t.equal(jsonTooDeep('["[[[[", "{{{{\\"[["]', 2), false, 'brackets in strings do not nest');
  t.equal(jsonTooDeep('[["\\\\"]]', 2), false, 'an escaped backslash ends before the quote');

  const split = async (pieces: Array<string | Buffer>, max = 1024) => {
    async function* input() {
      yield* pieces;
    }
    const out: unknown[] = [];
    for await (const lines of ndjsonLines(input(), max)) out.push(...lines);
    return out;
  };
  const euro = Buffer.from('"€"\n');
  t.same(await split([euro.subarray(0, 2), euro.subarray(2)]), [{ text: '"€"' }], 'a character split across pieces');
  t.same(await split(['a\nb', 'c\n\nd']), [{ text: 'a' }, { text: 'bc' }, { text: '' }, { text: 'd' }], 'a line across pieces; the last without a newline');
  t.same(
    await split(['12345', '6\nok\n', '1234567'], 5),
    [{ tooLong: 6 }, { text: 'ok' }, { tooLong: 7 }],
    'too long, in one piece or across two, and at the end',
  );
  t.same(await split([]), []);
});
