import { Histogram, Registry } from 'prom-client';
import t from 'tap';
import { LabelledHistogram } from '../src/server/metrics.js';
import { ADMIN, registrar, sampleValues, startNode } from './helpers.js';

/** The value of one sample line, e.g. metric('idnode_cache_hits_total'). */
function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? NaN : Number(line.split(' ').at(-1));
}

t.test('/metrics: requests, resolution latency by source, cache, SQLite writes, upstream, bulk', async (t) => {
  const up = await startNode(t, { homed: ['88.200'] });
  await up.call('PUT', '/api/handles/88.200/U-1', { token: ADMIN, body: sampleValues });
  const c = await startNode(t, { upstream: { url: up.url } });
  const reg = await registrar(c);
  // With an upstream, a new prefix waits for it; this test's upstream takes no reports.
  await c.call('PATCH', '/api/prefixes/88.100.7', { token: ADMIN, body: { status: 'active' } });
  await c.call('PUT', '/api/handles/88.100.7/M-1', { token: reg, body: sampleValues });
  await c.call('GET', '/api/handles/88.100.7/M-1'); // miss, not stored (admission)
  await c.call('GET', '/api/handles/88.100.7/M-1'); // miss → store
  await c.call('GET', '/api/handles/88.100.7/M-1'); // hit before fastify
  await c.call('GET', '/api/handles/88.100.7/M-1?type=URL'); // hit through fastify
  await c.call('GET', '/api/handles/88.200/U-1'); // forwarded
  await c.call('GET', '/api/handles/77.1/nowhere'); // upstream relays 301: an answer, not a failure
  await c.call('POST', '/api/prefixes/88.100.7/handles', {
    token: reg,
    body: '{"handle":"88.100.7/B-1","values":[{"index":1,"type":"URL","data":"x"}]}\n',
    headers: { 'content-type': 'application/x-ndjson' },
  });
  await c.call('DELETE', '/no/such/route'); // GET of any path is a short URL (a page); no route takes DELETE here
  const res = await c.call('GET', '/metrics');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/plain/);
  const m = res.text;
  t.equal(metric(m, 'idnode_http_requests_total', '{route="/api/handles/*",method="GET",status="200"}'), 5, 'fast-path and fastify answers both counted');
  t.equal(metric(m, 'idnode_http_requests_total', '{route="/api/handles/*",method="PUT",status="200"}'), 1);
  t.equal(metric(m, 'idnode_http_requests_total', '{route="unmatched",method="DELETE",status="404"}'), 1);
  t.equal(metric(m, 'idnode_resolution_seconds_count', '{source="cache"}'), 2);
  t.equal(metric(m, 'idnode_resolution_seconds_count', '{source="store"}'), 2);
  t.equal(metric(m, 'idnode_resolution_seconds_count', '{source="upstream"}'), 2);
  t.equal(metric(m, 'idnode_cache_hits_total'), 2);
  t.equal(metric(m, 'idnode_cache_misses_total'), 4);
  t.ok(metric(m, 'idnode_cache_bytes') > 0);
  t.ok(metric(m, 'idnode_sqlite_write_seconds_count') >= 4, 'token, prefix, record and bulk writes timed');
  t.equal(metric(m, 'idnode_upstream_request_seconds_count', `{origin="${up.url}"}`), 2);
  t.match(m, new RegExp(`idnode_upstream_in_flight\\{origin="${up.url.replace(/[.]/g, '\\.')}",state="up"\\} 0`));
  t.equal(metric(m, 'idnode_bulk_records_total'), 1);
  t.ok(metric(m, 'process_resident_memory_bytes') > 10 * 1024 * 1024, 'process metrics: resident memory');
  t.ok(metric(m, 'nodejs_heap_size_used_bytes') > 0, 'runtime metrics: heap');
  await up.node.close();
  await c.call('GET', '/api/handles/88.200/U-2');
  const after = (await c.call('GET', '/metrics')).text;
  t.equal(metric(after, 'idnode_upstream_errors_total', `{origin="${up.url}",code="IDN_UPSTREAM_UNREACHABLE"}`), 1);
  t.equal(metric(after, 'idnode_cache_hits_total'), 2, 'counters only grow by what happened');
});

t.test("the resolution histogram renders as prom-client's own would, bucket for bucket", async (t) => {
  const buckets = [0.001, 0.01, 0.1];
  const ours = new Registry();
  const theirs = new Registry();
  const h = new LabelledHistogram('x_seconds', 'help text', 'source', buckets, ours);
  const p = new Histogram({ name: 'x_seconds', help: 'help text', labelNames: ['source'], buckets, registers: [theirs] });
  const a = h.child('cache');
  const b = h.child('store');
  h.child('upstream'); // never observed: not shown, as prom-client shows no unused label value
  for (const [obs, label, v] of [
    [a, 'cache', 0.0005],
    [a, 'cache', 0.001],
    [a, 'cache', 0.05],
    [b, 'store', 0.5],
    [b, 'store', 0.002],
  ] as const) {
    obs(v);
    p.observe({ source: label }, v);
  }
  const text = await ours.metrics();
  t.equal(text, await theirs.metrics());
  t.match(text, 'x_seconds_bucket{le="0.001",source="cache"} 2');
  t.match(text, 'x_seconds_bucket{le="+Inf",source="store"} 2');
  h.reset();
  p.reset();
  a(0.02);
  p.observe({ source: 'cache' }, 0.02);
  t.equal(await ours.metrics(), await theirs.metrics(), 'the same after a reset');
});
