import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startNode } from './helpers.js';

t.test('past the in-flight bound: 503/3 at once, accepted requests keep their latency, memory stays flat', async (t) => {
  const slow = createServer((req, res) => {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          responseCode: 1,
          handle: decodeURIComponent(req.url!.slice(13)),
          values: [{ index: 1, type: 'URL', data: { format: 'string', value: 'x' }, ttl: 0 }],
        }),
      );
    }, 400);
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => slow.close(r)));
  const up = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const c = await startNode(t, { upstream: { url: up }, shedding: { maxInFlight: 3, eventLoopDelayMs: 0 } });
  const timed = async (path: string) => {
    const t0 = Date.now();
    const r = await c.call('GET', path);
    return { ...r, ms: Date.now() - t0 };
  };
  const heap0 = process.memoryUsage().heapUsed;
  const all = await Promise.all(Array.from({ length: 40 }, (_, i) => timed(`/api/handles/77.1/S-${i}`)));
  const ok = all.filter((r) => r.status === 200);
  const shed = all.filter((r) => r.status === 503);
  t.equal(ok.length, 3, 'the bound admits three');
  t.equal(shed.length, 37);
  t.match(shed[0]!.json, { responseCode: 3, code: 'IDN_UNAVAILABLE', message: /3 requests are in flight \(config shedding.maxInFlight\)/ });
  t.equal(shed[0]!.headers.get('retry-after'), '1');
  t.ok(Math.max(...shed.map((r) => r.ms)) < 300, 'refused at once, not queued');
  t.ok(Math.max(...ok.map((r) => r.ms)) < 1500, 'accepted ones take about the upstream time');
  t.equal((await c.call('GET', '/healthz')).status, 200, 'health checks are never shed');
  for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 50 }, (_, i) => c.call('GET', `/api/handles/77.1/R-${round}-${i}`)));
  t.ok(process.memoryUsage().heapUsed - heap0 < 64 * 1024 * 1024, 'memory stays bounded under a thousand refused requests');
  await new Promise((r) => setTimeout(r, 500));
  t.equal(c.node.app.shedder.inFlight(), 0, 'every admitted request was counted out');
  t.equal((await c.call('GET', '/api/handles/77.1/after')).status, 200);
});

t.test('event-loop delay turns shedding on and off', async (t) => {
  const c = await startNode(t, { shedding: { maxInFlight: 0, eventLoopDelayMs: 50 } });
  c.node.app.shedder.observeDelay(120);
  const shed = await c.call('GET', '/api/handles/88.100/none');
  t.equal(shed.status, 503);
  t.match(shed.json, { code: 'IDN_UNAVAILABLE', message: /event loop 120 ms behind; config shedding.eventLoopDelayMs/ });
  c.node.app.shedder.observeDelay(1);
  t.equal((await c.call('GET', '/api/handles/88.100/none')).status, 404);
  // A real stall of this process's event loop is noticed by the monitor.
  const end = Date.now() + 700;
  while (Date.now() < end);
  let status = 0;
  // Distinct identifiers: a cached answer is served before shedding applies (it costs nothing).
  for (let i = 0; i < 20 && status !== 503; i++) {
    await new Promise((r) => setTimeout(r, 50));
    status = (await c.call('GET', `/api/handles/88.100/stall-${i}`)).status;
  }
  t.equal(status, 503, 'shed after the stall');
  let back = 503;
  for (let i = 0; i < 40 && back === 503; i++) {
    await new Promise((r) => setTimeout(r, 100));
    back = (await c.call('GET', `/api/handles/88.100/after-${i}`)).status;
  }
  t.equal(back, 404, 'and back once the loop keeps up');
});
