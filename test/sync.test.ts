/**
 * Several senders on one database (nodes on one PostgreSQL, or workers on one SQLite file): each
 * claims a report for a lease before sending it, so none sends a report another one holds. Two
 * real engines on one database, two sync workers, a real upstream on port 0 counting reports.
 */
import t, { type Test } from 'tap';
import { createServer, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { StoreEngine } from '../src/store/index.js';
import { createUpstreamClient } from '../src/upstream/client.js';
import { createNodeStats, createSyncWorker, type SyncWorker } from '../src/upstream/sync.js';
import { listenLocal, tempDir, testClock, type TestClock } from './helpers.js';
import { ENGINES, type EngineName, storeOpener } from './pg.js';

const stores = storeOpener(t);
const LEASE_MS = 60_000;

/** Two engines on one database: what two nodes (or two workers) share. */
async function twoEngines(t: Test, engine: EngineName, clock: TestClock): Promise<[StoreEngine, StoreEngine] | undefined> {
  const now = () => new Date(clock.now());
  if (engine === 'sqlite') {
    const path = join(tempDir(t), 'shared.db');
    const a = (await stores.open(t, engine, { path, now }))!;
    return [a, (await stores.open(t, engine, { path, now }))!];
  }
  const cluster = await stores.cluster();
  if (cluster === undefined) return undefined;
  const url = await cluster.createDatabase();
  const a = (await stores.open(t, engine, { url, now }))!;
  return [a, (await stores.open(t, engine, { url, now }))!];
}

/**
 * The upstream: counts each idempotency key it receives. It holds the first answers until
 * `holdUntil` requests are in flight at once, so the senders are proven to race.
 */
async function countingUpstream(t: Test, holdUntil: number) {
  const received = new Map<string, number>();
  const held: ServerResponse[] = [];
  const answer = (res: ServerResponse) => res.writeHead(201, { 'content-type': 'application/json' }).end('{"responseCode":1}');
  let holding = holdUntil > 1;
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const key = (JSON.parse(body) as { idempotencyKey: string }).idempotencyKey;
      received.set(key, (received.get(key) ?? 0) + 1);
      if (!holding) return answer(res);
      held.push(res);
      if (held.length >= holdUntil) {
        holding = false;
        for (const r of held.splice(0)) answer(r);
      }
    });
  });
  return { url: await listenLocal(t, server), received };
}

function worker(t: Test, store: StoreEngine, url: string, clock: TestClock): SyncWorker {
  const upstream = createUpstreamClient({
    timeoutMs: 30_000,
    deadlineMs: 30_000,
    maxInFlight: 8,
    maxResponseBytes: 65536,
    failuresToDown: 100,
    downCooldownMs: 1000,
    now: clock.now,
  });
  const w = createSyncWorker({
    store,
    upstream,
    url,
    token: 'node-token',
    retryMaxMs: 1000,
    leaseMs: LEASE_MS,
    statsIntervalSeconds: 0,
    stats: createNodeStats(clock.now()),
    onPrefixAccepted: () => undefined,
    onError: (m) => t.fail(m),
    now: clock.now,
  });
  t.teardown(async () => {
    await w.stop();
    await upstream.close();
  });
  return w;
}

async function enqueue(store: StoreEngine, keys: string[]): Promise<void> {
  await store.write({ actor: 'admin', action: 'prefix.create', target: '88.100.1' }, async (tx) => {
    for (const k of keys) await tx.enqueueReport('prefix', k, JSON.stringify({ kind: 'prefix', event: 'created', prefix: '88.100.1' }));
    return { result: undefined, payload: 'reports', keepPayload: true };
  });
}

for (const engine of ENGINES) {
  t.test(`${engine}: two senders racing on one database never send the same report`, async (t) => {
    const clock = testClock(Date.parse('2026-11-30T08:00:00Z'));
    const pair = await twoEngines(t, engine, clock);
    if (pair === undefined) return;
    const [a, b] = pair;
    const keys = Array.from({ length: 40 }, (_, i) => `r-${i}`);
    await enqueue(a, keys);
    const up = await countingUpstream(t, 2);
    const wa = worker(t, a, up.url, clock);
    const wb = worker(t, b, up.url, clock);
    // Each round claims until nothing is left; the upstream holds the first two sends until both senders have one in flight.
    await Promise.all([wa.tick(), wb.tick()]);
    t.same([...up.received.keys()].sort(), [...keys].sort(), 'every report was sent');
    t.same(
      [...up.received].filter(([, n]) => n > 1),
      [],
      'none was sent twice',
    );
    t.equal(await a.pendingReports(), 0);
    t.equal(await b.pendingReports(), 0, 'the other engine sees them sent');
    t.same(
      (await b.outbox(0, 100)).filter((r) => r.state !== 'sent' || r.attempts !== 1).map((r) => r.idemKey),
      [],
      'each marked sent once',
    );
  });

  t.test(`${engine}: a sender that dies mid-send gives its report back when the lease runs out`, async (t) => {
    const clock = testClock(Date.parse('2026-11-30T08:00:00Z'));
    const pair = await twoEngines(t, engine, clock);
    if (pair === undefined) return;
    const [a, b] = pair;
    await enqueue(a, ['k-1', 'k-2', 'k-3']);
    // Node A claims k-1 and is gone before it sends (or marks) it.
    t.same(
      (await a.claimReports(clock.now(), 1, LEASE_MS)).map((r) => r.idemKey),
      ['k-1'],
    );
    await a.close();
    const up = await countingUpstream(t, 1);
    const wb = worker(t, b, up.url, clock);
    await wb.tick();
    t.same([...up.received.keys()].sort(), ['k-2', 'k-3'], 'the claimed one is left to its sender while the lease holds');
    clock.advance(LEASE_MS - 1);
    await wb.tick();
    t.equal(up.received.size, 2, 'still held a millisecond before the lease ends');
    clock.advance(1);
    await wb.tick();
    t.same([...up.received].sort(), [
      ['k-1', 1],
      ['k-2', 1],
      ['k-3', 1],
    ]);
    t.equal(await b.pendingReports(), 0);
  });
}
