import t from 'tap';
import { checkValue, mergeValues, parseValuesBody, ttlSeconds, type HandleValue } from '../src/registry/values.js';
import { answerEtag, answerText, etagOf, maxAgeAt, renderRecord, smallestTtl } from '../src/registry/answer.js';

const opts = { valuesMax: 5 };

t.test('accepted forms: bare string data, every format, defaults', async (t) => {
  t.same(checkValue({ index: 1, type: 'URL', data: 'http://x' }, 'v'), { index: 1, type: 'URL', data: { format: 'string', value: 'http://x' }, ttl: 86400 });
  const ok = [
    { format: 'base64', value: 'aGVsbG8=' },
    { format: 'hex', value: '0aFF' },
    { format: 'key', value: 'AAAA' },
    { format: 'site', value: { attributes: [] } },
    { format: 'vlist', value: [{ handle: '0.NA/88.100', index: 200 }] },
    { format: 'admin', value: { handle: '0.NA/88.100', index: 200, permissions: '011111110011' } },
  ];
  for (const data of ok) t.doesNotThrow(() => checkValue({ index: 100, type: 'HS_X', data }, 'v'), data.format);
  const v = checkValue({ index: 2, type: 'x', data: 'y', ttl: '2030-01-01T00:00:00Z', permissions: '1110', references: [], timestamp: 'ignored' }, 'v');
  t.equal(v.permissions, undefined, 'default permissions are not stored');
  t.equal(v.references, undefined);
  t.equal(checkValue({ index: 2, type: 'x', data: 'y', permissions: '1100' }, 'v').permissions, '1100');
  t.same(checkValue({ index: 2, type: 'x', data: 'y', references: [{ handle: '88.1/a', index: 1 }] }, 'v').references, [{ handle: '88.1/a', index: 1 }]);
});

t.test('every rule has a message that names the value and what to fix', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['x', /v must be an object/],
    [{ index: 0, type: 'a', data: 'b' }, /index must be an integer from 1 to 4294967295/],
    [{ index: 4294967296, type: 'a', data: 'b' }, /index must be/],
    [{ index: 1.5, type: 'a', data: 'b' }, /index must be/],
    [{ index: 'one', type: 'a', data: 'b' }, /index must be an integer .*got "one"/],
    [{ index: '1.5', type: 'a', data: 'b' }, /index must be/],
    [{ index: '0', type: 'a', data: 'b' }, /index must be/],
    [{ index: '4294967296', type: 'a', data: 'b' }, /index must be/],
    [{ index: '-1', type: 'a', data: 'b' }, /index must be/],
    [{ index: ' 1', type: 'a', data: 'b' }, /index must be/],
    [{ index: 1, type: 'a', data: { format: 'admin', value: { handle: '0.NA/88.1', index: 'x', permissions: '01' } } }, /data\.value must be \{"handle"/],
    [{ index: 1, type: '', data: 'b' }, /type must be 1 to 256 printable/],
    [{ index: 1, type: 'a\nb', data: 'b' }, /type must be/],
    [{ index: 1, type: 'a'.repeat(257), data: 'b' }, /type must be/],
    [{ index: 1, type: 'a', data: 5 }, /data must be a string or/],
    [{ index: 1, type: 'a', data: { format: 'text', value: 'x' } }, /data.format must be one of string, base64/],
    [{ index: 1, type: 'a', data: { format: 'string' } }, /data.value is missing/],
    [{ index: 1, type: 'a', data: { format: 'string', value: 5 } }, /must be a string for format "string"/],
    [{ index: 1, type: 'a', data: { format: 'string', value: 'a\ud800' } }, /lone surrogate/],
    [{ index: 1, type: 'a', data: { format: 'base64', value: 'abc' } }, /base64 text/],
    [{ index: 1, type: 'a', data: { format: 'hex', value: 'abc' } }, /even number of hex digits/],
    [{ index: 1, type: 'a', data: { format: 'admin', value: { handle: 'x' } } }, /for format "admin"/],
    [{ index: 1, type: 'a', data: { format: 'admin', value: { handle: 'nope', index: 1, permissions: '01' } } }, /data.value.handle: .* has no "\/"/],
    [{ index: 1, type: 'a', data: { format: 'vlist', value: 'x' } }, /list of \{"handle", "index"\} for format "vlist"/],
    [{ index: 1, type: 'a', data: { format: 'vlist', value: [{ handle: '88/x' }] } }, /value\[0\] must be \{"handle"/],
    [{ index: 1, type: 'a', data: { format: 'site', value: 'x' } }, /must be an object for format "site"/],
    [{ index: 1, type: 'a', data: 'b', ttl: -1 }, /ttl must be seconds/],
    [{ index: 1, type: 'a', data: 'b', ttl: 'tomorrow' }, /ttl must be seconds/],
    [{ index: 1, type: 'a', data: 'b', timestamp: 5 }, /timestamp must be a string/],
    [{ index: 1, type: 'a', data: 'b', permissions: '11' }, /permissions must be 4 characters/],
    [{ index: 1, type: 'a', data: 'b', references: 'x' }, /references must be a list/],
  ];
  for (const [raw, msg] of cases) t.throws(() => checkValue(raw, 'v'), { code: 'IDN_INVALID_VALUE', responseCode: 202, message: msg }, String(msg));
});

t.test('body shapes and limits', async (t) => {
  t.equal(parseValuesBody([{ index: 1, type: 'a', data: 'b' }], opts).length, 1);
  t.equal(parseValuesBody({ values: [{ index: 1, type: 'a', data: 'b' }], handle: '88.1/X' }, { ...opts, handleKey: '88.1/x' }).length, 1);
  const cases: Array<[unknown, RegExp]> = [
    [{ vals: [] }, /must be \{"values": \[...\]\}, a JSON array of values or one value/],
    [{ values: 'x' }, /must be \{"values": \[...\]\}, a JSON array/],
    [[], /has no values/],
    [Array.from({ length: 6 }, (_, i) => ({ index: i + 1, type: 'a', data: 'b' })), /6 values; at most 5 .*limits.valuesMax/],
    [
      [
        { index: 1, type: 'a', data: 'b' },
        { index: 1, type: 'c', data: 'd' },
      ],
      /values\[1\].index 1 appears more than once/,
    ],
    [
      [
        { index: 1, type: 'a', data: 'b' },
        { index: 2, type: 'c' },
      ],
      /values\[1\].data must be/,
    ],
  ];
  for (const [body, msg] of cases) t.throws(() => parseValuesBody(body, opts), { code: 'IDN_INVALID_VALUE', message: msg }, String(msg));
  t.throws(() => parseValuesBody({ handle: '88.1/other', values: [] }, { ...opts, handleKey: '88.1/x' }), {
    message: /names handle "88.1\/other" but the URL names/,
  });
});

t.test('merge keeps written order and unchanged timestamps', async (t) => {
  const v = (index: number, data: string) => checkValue({ index, type: 't', data }, 'v');
  const first = mergeValues([], [v(3, 'c'), v(1, 'a')], 'T1');
  t.same(
    first.map((x) => [x.index, x.timestamp]),
    [
      [3, 'T1'],
      [1, 'T1'],
    ],
    'order as written, not sorted',
  );
  const second = mergeValues(first, [v(3, 'c'), v(1, 'A')], 'T2');
  t.same(
    second.map((x) => x.timestamp),
    ['T1', 'T2'],
    'only the changed value gets a new timestamp',
  );
  const partial = mergeValues(second, [v(1, 'z'), v(9, 'new')], 'T3', new Set([1, 9]));
  t.same(
    partial.map((x) => [x.index, x.data.value, x.timestamp]),
    [
      [1, 'z', 'T3'],
      [3, 'c', 'T1'],
      [9, 'new', 'T3'],
    ],
    'index= re-sorts by index, as Handle.Net does',
  );
});

t.test('Handle.Net leniency: unknown fields ignored, decimal-string indexes, one bare value, HS_ADMIN padded', async (t) => {
  t.same(
    checkValue({ index: '7', type: 'URL', data: { format: 'string', value: 'x', note: 1 }, colour: 'red', timestamp: 'T' }, 'v'),
    { index: 7, type: 'URL', data: { format: 'string', value: 'x' }, ttl: 86400 },
    'unknown fields in the value and in data are dropped; "7" is 7',
  );
  const admin = checkValue({ index: 100, type: 'HS_ADMIN', data: { value: { index: '200', handle: '0.NA/88.1', permissions: '0111' }, format: 'admin' } }, 'v');
  t.same(admin.data, { format: 'admin', value: { handle: '0.NA/88.1', index: 200, permissions: '011100000000' } }, 'index "200" → 200; 12 flags');
  const long = checkValue(
    { index: 100, type: 'HS_ADMIN', data: { format: 'admin', value: { index: 200, handle: '0.NA/88.1', permissions: '0111111100111' } } },
    'v',
  );
  t.equal((long.data.value as { permissions: string }).permissions, '0111111100111', 'more than 12 flags are kept as sent');
  t.same(checkValue({ index: 1, type: 'x', data: 'y', references: [{ handle: '88.1/a', index: '3' }] }, 'v').references, [{ handle: '88.1/a', index: 3 }]);
  t.same(
    parseValuesBody({ index: 1, type: 'URL', data: 'x' }, opts).map((v) => v.index),
    [1],
    'a single bare value object',
  );
  const answer = { responseCode: 1, handle: '88.1/X', values: [{ index: '2', type: 'a', data: 'b', ttl: 86400, timestamp: 'T' }], extra: true };
  t.same(
    parseValuesBody(answer, { ...opts, handleKey: '88.1/x' }).map((v) => v.index),
    [2],
    'a GET answer is a valid body',
  );
});

t.test('rendering: public view only when needed; ttl seconds', async (t) => {
  const pub: HandleValue = { index: 1, type: 'a', data: { format: 'string', value: 'x' }, ttl: 10, timestamp: 'T' };
  const priv: HandleValue = { ...pub, index: 2, permissions: '1100' };
  t.equal(renderRecord([pub]).publicJson, null);
  t.same(JSON.parse(renderRecord([pub, priv]).publicJson!), [pub]);
  t.equal(ttlSeconds(pub, 0), 10);
  t.equal(ttlSeconds({ ...pub, ttl: '1970-01-01T00:01:40Z' }, 40_000), 60);
  t.equal(ttlSeconds({ ...pub, ttl: '1970-01-01T00:00:00Z' }, 40_000), 0);
});

t.test('answer metadata stored at write time equals what a read would compute, at any time', async (t) => {
  const v = (index: number, ttl: number | string, permissions?: string): HandleValue => ({
    index,
    type: 'URL',
    data: { format: 'string', value: `http://x/${index}` },
    ttl,
    timestamp: '2026-01-01T00:00:00Z',
    ...(permissions ? { permissions } : {}),
  });
  const lists: HandleValue[][] = [
    [v(1, 3600)],
    [v(1, 3600), v(2, 60)],
    [v(1, 999999)],
    [v(1, 3600), v(2, '2026-01-01T01:00:00Z')],
    [v(1, '2026-01-02T00:00:00Z'), v(2, '2026-01-01T00:10:00Z')],
    [v(1, 3600), v(2, 5, '1100')],
    [v(2, 5, '1100')],
  ];
  for (const values of lists) {
    const r = renderRecord(values);
    const served = r.publicJson ?? r.valuesJson;
    t.equal(answerEtag('88.1/A', r), etagOf(answerText('88.1/A', served)), 'etag of the public body');
    for (const now of [
      Date.parse('2025-12-31T00:00:00Z'),
      Date.parse('2026-01-01T00:05:00Z'),
      Date.parse('2026-01-01T00:30:00Z'),
      Date.parse('2026-03-01T00:00:00Z'),
    ])
      t.equal(maxAgeAt(r, now), smallestTtl(JSON.parse(served) as HandleValue[], now), `${served} at ${new Date(now).toISOString()}`);
  }
  t.equal(renderRecord([v(2, 5, '1100')]).maxAge, 0, 'nothing public: max-age 0');
});
