import t from 'tap';
import { readFileSync } from 'node:fs';
import { ERRORS, httpStatusFor, IdnError } from '../src/errors.js';

/**
 * Errors whose HTTP status is not the generic mapping of their responseCode (docs/API.md §3):
 * gateway errors (504/502 by contract), and a DELETE ?index= naming a missing value (Handle
 * code 200 "values not found" maps to HTTP 200 only on resolution; a failed write is a 400, as the reference answers),
 * and bad credentials (401 with responseCode 403 and WWW-Authenticate, as the reference answers).
 */
const EXCEPTIONS = new Set(['IDN_UPSTREAM_BAD_ANSWER', 'IDN_UPSTREAM_UNREACHABLE', 'IDN_UPSTREAM_TIMEOUT', 'IDN_VALUE_NOT_FOUND', 'IDN_AUTH_FAILED']);

t.test('every error follows the responseCode → HTTP mapping (gateway errors excepted)', async (t) => {
  for (const [code, e] of Object.entries(ERRORS)) {
    if (EXCEPTIONS.has(code)) continue;
    t.equal(e.http, httpStatusFor(e.responseCode), code);
  }
  t.equal(ERRORS.IDN_UPSTREAM_TIMEOUT.http, 504);
  t.equal(ERRORS.IDN_UPSTREAM_BAD_ANSWER.http, 502);
  t.same(ERRORS.IDN_VALUE_NOT_FOUND, { http: 400, responseCode: 200 });
  t.same(ERRORS.IDN_VALUE_EXISTS, { http: 409, responseCode: 201 });
  t.same(ERRORS.IDN_AUTH_FAILED, { http: 401, responseCode: 403 });
  const pairs: Array<[number, number]> = [
    [1, 200],
    [200, 200],
    [100, 404],
    [101, 409],
    [201, 409],
    [4, 400],
    [102, 400],
    [202, 400],
    [301, 400],
    [402, 401],
    [400, 403],
    [401, 403],
    [403, 403],
    [404, 403],
    [302, 300],
    [303, 300],
    [3, 503],
    [7, 503],
    [5, 501],
    [6, 508],
    [2, 500],
    [999, 500],
  ];
  for (const [rc, http] of pairs) t.equal(httpStatusFor(rc), http, `responseCode ${rc}`);
});

/**
 * The error table of a Markdown file: rows `| \`IDN_…\` | HTTP | responseCode | … |`, in order.
 * Every row is kept (a Map would hide a code listed twice).
 */
function errorTable(file: string): Array<{ code: string; http: number; responseCode: number }> {
  const text = readFileSync(new URL(file, import.meta.url), 'utf8');
  return [...text.matchAll(/^\|\s*`(IDN_[A-Z_]+)`\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|/gm)].map((m) => ({
    code: m[1]!,
    http: Number(m[2]),
    responseCode: Number(m[3]),
  }));
}

for (const [name, file] of [
  ['README.md', '../README.md'],
  ['docs/API.md', '../docs/API.md'],
] as const) {
  t.test(`${name} error table matches src/errors.ts exactly`, async (t) => {
    const rows = errorTable(file);
    t.same(rows.map((r) => r.code).sort(), Object.keys(ERRORS).sort(), 'every code once, no other');
    const byCode = new Map(rows.map((r) => [r.code, { http: r.http, responseCode: r.responseCode }]));
    for (const [code, e] of Object.entries(ERRORS)) t.same(byCode.get(code), e, code);
  });
}

t.test('IdnError body', async (t) => {
  const e = new IdnError('IDN_NOT_FOUND', 'gone', { handle: '88.100/x', headers: { 'retry-after': '1' } });
  t.same(e.toBody(), { responseCode: 100, handle: '88.100/x', message: 'gone', code: 'IDN_NOT_FOUND' });
  t.same(new IdnError('IDN_INTERNAL', 'x', { cause: new Error('y') }).toBody(), { responseCode: 2, message: 'x', code: 'IDN_INTERNAL' });
});
