import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFastPath, pinTickRecord } from '../src/server/fastpath.js';
import type { Resolver } from '../src/resolver/index.js';
import { createNodeStats } from '../src/upstream/sync.js';
import { IdnError } from '../src/errors.js';

/**
 * The fast path's forwarding branch on its own: a node:http server whose misses all belong
 * to another node, with a resolver that fails the way the test says (what a real upstream
 * cannot be made to do: throw something that is not an IdnError).
 */
async function serve(t: Test, fail: () => Error, refuse: string | undefined) {
  const log: unknown[] = [];
  let inFlight = 0;
  const idleWaiters: Array<() => void> = [];
  const resolver = {
    cached: () => undefined,
    resolveLocal: () => undefined,
    resolve: async () => {
      throw fail();
    },
  } as unknown as Resolver;
  const counted: number[] = [];
  const fast = createFastPath(
    resolver,
    createNodeStats(),
    { fastHit: (status) => void counted.push(status) },
    {
      overloaded: () => false,
      refuse: () => {
        if (refuse !== undefined) return refuse;
        inFlight++;
        return undefined;
      },
      done: () => {
        inFlight--;
        if (inFlight === 0) for (const w of idleWaiters.splice(0)) w();
      },
      logError: (err) => void log.push(err),
    },
  );
  const server: Server = createServer((req, res) => {
    if (!fast(req, res)) res.writeHead(299).end('fastify');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    counted,
    inFlight: () => inFlight,
    /** Resolves once every slot taken has been given back (the answers' close events ran). */
    idle: () => new Promise<void>((resolve) => (inFlight === 0 ? resolve() : idleWaiters.push(resolve))),
  };
}

t.test('a forwarded miss that fails with a foreign error: 500 IDN_INTERNAL in the Handle shape, logged, slot released', async (t) => {
  const s = await serve(t, () => new TypeError('boom'), undefined);
  const res = await fetch(`${s.url}/api/handles/77.1/X`);
  t.equal(res.status, 500);
  t.same(await res.json(), { responseCode: 2, handle: '77.1/X', message: 'the answer could not be built', code: 'IDN_INTERNAL' });
  t.equal(s.log.length, 1);
  t.match(String(s.log[0]), /boom/);
  const head = await fetch(`${s.url}/api/handles/77.1/X`, { method: 'HEAD' });
  t.equal(head.status, 500);
  t.equal(await head.text(), '', 'HEAD: no body');
  await s.idle();
  t.equal(s.inFlight(), 0, 'every in-flight slot given back when the answer closed');
  t.same(s.counted, [500, 500], 'counted as requests');
});

t.test('an IdnError keeps its status, headers and identifier; refused or forwarded requests go to fastify', async (t) => {
  const s = await serve(t, () => new IdnError('IDN_UNAVAILABLE', 'the upstream is down', { headers: { 'retry-after': '7' } }), undefined);
  const res = await fetch(`${s.url}/api/handles/77.1/Y`);
  t.equal(res.status, 503);
  t.equal(res.headers.get('retry-after'), '7');
  t.match(await res.json(), { responseCode: 3, handle: '77.1/Y', code: 'IDN_UNAVAILABLE' });
  t.equal(s.log.length, 0, 'expected errors are not logged as faults');
  const hop = await fetch(`${s.url}/api/handles/77.1/Y`, { headers: { 'idn-hop-count': '1' } });
  t.equal(hop.status, 299, 'a request another node forwarded takes the fastify path (hop checks)');
  const refused = await serve(t, () => new Error('unused'), 'busy');
  t.equal((await fetch(`${refused.url}/api/handles/77.1/Y`)).status, 299, 'no in-flight slot: fastify refuses it');
});

t.test('the fast path keeps one of node’s own tick records alive, so their hidden classes are never freed', async (t) => {
  createFastPath(
    {} as Resolver,
    createNodeStats(),
    { fastHit: () => {} },
    { overloaded: () => false, refuse: () => undefined, done: () => {}, logError: () => {} },
  );
  const record = pinTickRecord();
  t.type(record, 'object', 'a record was captured');
  const keys = Reflect.ownKeys(record!).map((k) => (typeof k === 'symbol' ? k.description : k));
  // ownKeys lists strings before symbols: node's literal is { [async_id], [trigger_async_id], callback, args }.
  t.same(keys, ['callback', 'args', 'async_id_symbol', 'trigger_async_id_symbol'], 'it is a process.nextTick record');
  t.equal(pinTickRecord(), record, 'one record per process, taken once');
});
