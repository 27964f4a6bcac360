import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRuns, normalise, renderReadme, verdict } from '../bench/report.js';

const BENCH = fileURLToPath(new URL('../bench/', import.meta.url));

t.test("bench/README.md's generated tables are what bench/report.ts renders from bench/results (npm run bench:report)", async (t) => {
  const readme = readFileSync(join(BENCH, 'README.md'), 'utf8');
  const runs = loadRuns(join(BENCH, 'results'));
  t.ok(runs.length > 0, 'result files found');
  t.ok((readme.match(/<!-- bench:/g) ?? []).length >= 10, 'the README has its generated blocks');
  const rendered = renderReadme(readme, runs);
  const a = readme.split('\n');
  const b = rendered.split('\n');
  const first = a.findIndex((line, i) => line !== b[i]);
  t.equal(first, -1, first === -1 ? 'up to date' : `line ${first + 1} differs: "${a[first]}" vs rendered "${b[first]}"; run npm run bench:report`);
  t.equal(rendered, readme);
});

t.test('a table that differs from its runs is rewritten; markers are checked', async (t) => {
  const runs = loadRuns(join(BENCH, 'results'));
  const readme = readFileSync(join(BENCH, 'README.md'), 'utf8');
  const tampered = readme.replace(/(<!-- bench:latest -->\n[^\n]*\n[^\n]*\n\| \w+ \| [^|]+\| [^|]+\| )[\d.]+×/, '$19.99×');
  t.not(tampered, readme, 'a number in the latest table was changed');
  t.equal(renderReadme(tampered, runs), readme, 'rendering puts the runs back');
  t.throws(() => renderReadme('<!-- bench:latest -->\nno end', runs), /1 generated blocks opened, 0 closed/);
  t.throws(() => renderReadme('<!-- bench:nope -->\n<!-- /bench -->', runs), /unknown block kind "nope"/);
  t.throws(() => renderReadme('<!-- bench:sides file=missing-file -->\n<!-- /bench -->', runs), /no result file missing-file\.json/);
});

t.test('the first result shape (top-level idnode, bare, ratio, targets) is read like the current one', async (t) => {
  const old = normalise('hot-old', {
    scenario: 'hot',
    date: '2026-11-25T15:20:32.910Z',
    node: 'v20.20.2',
    commit: 'b28c1a7',
    dirty: false,
    machine: '2 x AMD EPYC',
    options: { runs: 1, seconds: 10, connections: 32 },
    ratio: { rps: 0.99, cpuPerReq: 1.18 },
    targets: { rps: 0.9, cpu: 1.2 },
    keys: 3000,
    bodyBytes: 1028,
    idnode: { runs: [{ rps: 43166.9 }], rps: 43166.9, cpuUsPerReq: 21.9, p99: 1 },
    bare: { runs: [{ rps: 43576.5 }], rps: 43576.5, cpuUsPerReq: 18.5, p99: 1 },
  });
  t.same(old.sides, {
    bare: { rps: 43576.5, cpuUsPerReq: 18.5, p99: 1, runs: [43576.5] },
    idnode: { rps: 43166.9, cpuUsPerReq: 21.9, p99: 1, runs: [43166.9] },
  });
  t.same(old.ratios, [
    { name: 'throughput idnode/bare', value: 0.99, target: '>= 0.90' },
    { name: 'CPU per request idnode/bare', value: 1.18, target: '<= 1.20' },
  ]);
  t.same(old.notes, { keys: 3000, bodyBytes: 1028 });
});

t.test('verdicts compare the value as shown', async (t) => {
  t.equal(verdict({ name: 'x', value: 1.2015, target: '<= 1.20' }), 'met', '1.20× is within <= 1.20');
  t.equal(verdict({ name: 'x', value: 1.206, target: '<= 1.20' }), '**missed**');
  t.equal(verdict({ name: 'x', value: 0.9, target: '>= 0.90' }), 'met');
  t.equal(verdict({ name: 'x', value: 0.5 }), '', 'no target, no verdict');
});

t.test('a notes block shows the named notes of the newest run of its scenario', async (t) => {
  const run = normalise('pg-visibility-x', {
    scenario: 'pg-visibility',
    date: '2026-11-30T07:15:00.000Z',
    node: 'v20.20.2',
    commit: 'abc1234',
    dirty: false,
    machine: '2 x AMD EPYC',
    options: { runs: 3, seconds: 10, connections: 32 },
    sides: {},
    ratios: [],
    notes: { writes: 300, visibilityMs: { p50: 2.5, p99: 58.25 }, p99msPerNode: [120, 112] },
  });
  const out = renderReadme('<!-- bench:notes scenario=pg-visibility keys=writes,visibilityMs,p99msPerNode,absent -->\n<!-- /bench -->', [run]);
  t.match(out, 'pg-visibility, 2026-11-30 07:15, abc1234, Node v20.20.2');
  t.match(out, '| writes | 300 |');
  t.match(out, '| visibilityMs | p50 2.5, p99 58.25 |');
  t.match(out, '| p99msPerNode | 120 / 112 |');
  t.match(out, '| absent | — |');
  t.throws(() => renderReadme('<!-- bench:notes scenario=nothing-like-it -->\n<!-- /bench -->', [run]), /no result file for scenario "nothing-like-it"/);
});
