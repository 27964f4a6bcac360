/**
 * Composition root: builds every part from one config, listens, shuts down.
 * Dependencies are passed as arguments; nothing reads config globally.
 */
import { createServer } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { SEEDS_DIR } from './paths.js';
import { createEvents, type Events } from './lineage/events.js';
import { type Auditing, createAuditing } from './lineage/query.js';
import { type Bulk, createBulk } from './registry/bulk.js';
import { createPrefixes, type Prefixes } from './registry/prefixes.js';
import { createTemplates, type Templates } from './registry/templates.js';
import { createRecords, type Records } from './registry/records.js';
import { seedIfEmpty } from './registry/seed.js';
import { createTokens, type Tokens } from './registry/tokens.js';
import { type ChangeFollower, createChangeFollower, createResolver, type Resolver } from './resolver/index.js';
import { buildApp } from './server/app.js';
import { createMetrics } from './server/metrics.js';
import type { NodeDeps } from './server/deps.js';
import { createFastPath } from './server/fastpath.js';
import { createNativeServer, type NativeServer } from './native/server.js';
import { createConnectionGuard } from './server/shedding.js';
import { connectStore, isoSeconds, openStore, type Store, type StoreOptions } from './store/index.js';
import { createUpstreamClient, type UpstreamClient } from './upstream/client.js';
import { createRouter, type Router } from './upstream/routing.js';
import { createNodeStats, createSyncReceiver, createSyncWorker, type NodeStats, type SyncReceiver, type SyncWorker } from './upstream/sync.js';

export interface Registry {
  config: Config;
  store: Store;
  router: Router;
  resolver: Resolver;
  upstream: UpstreamClient;
  records: Records;
  bulk: Bulk;
  templates: Templates;
  prefixes: Prefixes;
  tokens: Tokens;
  events: Events;
  auditing: Auditing;
  stats: NodeStats;
  syncReceiver: SyncReceiver;
  /** Sends reports to the upstream; undefined without one. */
  syncWorker: SyncWorker | undefined;
  /** Keeps this process's caches (answers, routing, templates) in step with the change feed. */
  changes: ChangeFollower;
}

/** Observers the HTTP layer's metrics attach (the CLI runs without). */
export interface Hooks {
  onWrite?: (ms: number) => void;
  onUpstream?: (base: string, ms: number, failure: string | undefined) => void;
  onBulk?: (records: number) => void;
  /** The one clock (ms since the epoch) of the store, cache, upstream client and sync; tests move it. */
  now?: (() => number) | undefined;
}

/**
 * Opens the store the configuration names: the SQLite file `db`, or the PostgreSQL primary
 * `store.url` (connected and migrated before this resolves) with its optional standbys.
 */
export async function openConfiguredStore(config: Config, opts: StoreOptions = {}): Promise<Store> {
  const common: StoreOptions = {
    history: config.history,
    cacheBytes: config.sqlite.cacheBytes,
    mmapBytes: config.sqlite.mmapBytes,
    changesRetention: config.changes.retention,
    ...opts,
  };
  if (config.store.engine === 'sqlite') return openStore(config.db, common);
  return connectStore({
    engine: 'postgres',
    url: config.store.url,
    ...(config.store.readUrl !== '' ? { readUrl: config.store.readUrl } : {}),
    poolSize: config.store.connections,
    auditPartitionEntries: config.store.auditPartitionEntries,
    statementTimeoutMs: config.store.statementTimeoutMs,
    connectTimeoutMs: config.store.connectTimeoutMs,
    ...common,
  });
}

/** Store, routing, cache and registries: everything but HTTP (the CLI uses this alone). */
export async function openRegistry(config: Config, hooks: Hooks = {}): Promise<Registry> {
  const now = hooks.now ?? Date.now;
  const store = await openConfiguredStore(config, {
    now: () => new Date(now()),
    ...(hooks.onWrite ? { onWrite: hooks.onWrite } : {}),
  });
  try {
    return await assembleRegistry(config, hooks, store);
  } catch (err) {
    // Closed, or its connections (PostgreSQL's LISTEN, say) keep a process that failed to start alive.
    await store.close().catch(() => undefined);
    throw err;
  }
}

async function assembleRegistry(config: Config, hooks: Hooks, store: Store): Promise<Registry> {
  const now = hooks.now ?? Date.now;
  const router = await createRouter({ store, homed: config.homed, upstreamUrl: config.upstream.url });
  const prefixes = createPrefixes({
    store,
    router,
    homed: config.homed,
    baseUrl: config.baseUrl,
    hasUpstream: config.upstream.url !== '',
    startedAt: isoSeconds(new Date(now())),
  });
  const upstream = createUpstreamClient({
    timeoutMs: config.upstream.timeoutMs,
    deadlineMs: config.upstream.deadlineMs,
    maxInFlight: config.upstream.maxInFlight,
    maxResponseBytes: config.upstream.maxResponseBytes,
    failuresToDown: config.upstream.failuresToDown,
    downCooldownMs: config.upstream.downCooldownMs,
    now,
    ...(hooks.onUpstream ? { onResult: hooks.onUpstream } : {}),
  });
  const resolver = createResolver({
    store,
    router,
    prefixes,
    upstream,
    cacheMaxBytes: config.cache.maxBytes,
    notFoundTtlSeconds: config.cache.notFoundTtlSeconds,
    staleWindowSeconds: config.cache.staleWindowSeconds,
    admission: config.cache.admission,
    admissionCounters: config.cache.admissionCounters,
    keyFilterMaxBytes: config.cache.keyFilterMaxBytes,
    now,
  });
  const stats = createNodeStats(now());
  const templates = await createTemplates({ store });
  const records = createRecords({ store, templates, valuesMax: config.limits.valuesMax, onWritten: () => stats.registration() });
  const bulk = createBulk({
    store,
    templates,
    valuesMax: config.limits.valuesMax,
    lineMaxBytes: config.limits.bulkLineMaxBytes,
    chunkSize: config.bulk.chunkSize,
    onWritten: (keys) => {
      hooks.onBulk?.(keys.length);
      for (let i = 0; i < keys.length; i++) stats.registration();
    },
  });
  const tokens = createTokens({ store, homedAncestor: (prefixKey) => router.homedAncestor(prefixKey) });
  const events = createEvents({ store, router, itemsMax: config.lineage.eventItemsMax });
  const auditing = createAuditing({ store, maxNodes: config.lineage.maxNodes, isLocalPrefix: (p) => router.route(p).kind === 'local' });
  const syncWorker =
    config.upstream.url === ''
      ? undefined
      : createSyncWorker({
          store,
          upstream,
          url: config.upstream.url,
          token: config.upstream.token,
          retryMaxMs: config.sync.retryMaxMs,
          leaseMs: config.sync.leaseMs,
          statsIntervalSeconds: config.sync.statsIntervalSeconds,
          stats,
          onPrefixAccepted: (p) => prefixes.accept(p),
          now,
        });
  const syncReceiver = createSyncReceiver({ store });
  const changes = await createChangeFollower({
    store,
    pollMs: config.changes.pollMs,
    backstopMs: config.changes.backstopMs,
    async apply(rows) {
      const prefixKeys: string[] = [];
      let templatesChanged = false;
      for (const r of rows) {
        if (r.kind === 'record') resolver.invalidate(r.key);
        else if (r.kind === 'prefix') prefixKeys.push(r.key);
        else if (r.kind === 'template') templatesChanged = true;
        // 'token': tokens are looked up in the store on every request; nothing is cached.
      }
      if (prefixKeys.length > 0) {
        // Routing first: an answer resolved after the drop must take the new route.
        await router.reload();
        for (const key of prefixKeys) resolver.invalidateUnder(key);
      }
      if (templatesChanged) await templates.reload();
    },
    async reset() {
      await router.reload();
      await templates.reload();
      resolver.clear();
    },
  });
  // After the follower exists: every record written from now on reaches the filter through the feed.
  void resolver.loadKeys();
  return { config, store, router, resolver, upstream, records, bulk, templates, prefixes, tokens, events, auditing, stats, syncReceiver, syncWorker, changes };
}

export interface IdNode extends Registry {
  app: FastifyInstance;
  /** The native Handle protocol listeners (TCP and UDP); undefined when native.port is 0. */
  native: NativeServer | undefined;
  /** Listens on config.listen; resolves to the base URL actually bound (port 0 → real port). */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface NodeOptions {
  /** Secret for the first admin token (IDNODE_ADMIN_TOKEN). */
  adminToken?: string;
  logger?: boolean | { level: string };
  /** Run the sync worker (one process of a cluster does). Default true. */
  runSync?: boolean;
  /** The clock, ms since the epoch (default Date.now): TTLs, stale windows, cool-downs, audit times. */
  now?: () => number;
}

export async function createNode(config: Config, opts: NodeOptions = {}): Promise<IdNode> {
  // The metrics and the fast path read parts built after them.
  const late: { registry?: Registry; app?: FastifyInstance } = {};
  const metrics = createMetrics({ resolver: () => late.registry!.resolver, upstream: () => late.registry!.upstream });
  const registry = await openRegistry(config, {
    onWrite: (ms) => metrics.storeWrite(ms),
    onUpstream: (base, ms, failure) => metrics.upstreamResult(base, ms, failure),
    onBulk: (records) => metrics.bulkRecords(records),
    now: opts.now,
  });
  late.registry = registry;
  try {
    if (opts.adminToken) await registry.tokens.bootstrapAdmin(opts.adminToken);
    if (config.seed) await seedIfEmpty(registry, config.seedDir === '' ? SEEDS_DIR : config.seedDir);
    const deps: NodeDeps = { ...registry, metrics };
    const fastPath = createFastPath(registry.resolver, registry.stats, metrics, {
      overloaded: () => late.app !== undefined && (late.app.shedder.overloaded() || late.app.shedder.behind() > 0),
      refuse: () => (late.app === undefined ? 'the node is starting' : late.app.shedder.refuse()),
      done: () => late.app?.shedder.done(),
      logError: (err, message) => late.app?.log.error({ err }, message),
    });
    const guard = createConnectionGuard(config.limits, (url, authorization) => late.app?.shedder.exempt(url, authorization) ?? false);
    const app = await buildApp(deps, {
      logger: opts.logger ?? false,
      serverFactory: (handler) =>
        guard.attach(createServer(guard.serverOptions, (req, res) => (guard.request(req, res) || fastPath(req, res) ? undefined : handler(req, res)))),
    });
    late.app = app;
    await app.ready();
    if (opts.runSync !== false) registry.syncWorker?.start();
    let httpBase = config.baseUrl;
    const native =
      config.native.port === 0
        ? undefined
        : createNativeServer({
            resolver: registry.resolver,
            options: config.native,
            httpBaseUrl: () => httpBase,
            onRequest: (transport, rc, ms, source) => metrics.nativeRequest(transport, rc, ms, source),
            logError: (err, message) => app.log.error({ err }, message),
          });
    return {
      ...registry,
      app,
      native,
      async listen() {
        // An accept queue as deep as the connection bound: a dropped SYN costs a client a 1 s retransmit.
        await app.listen({ host: config.listen.host, port: config.listen.port, backlog: Math.max(511, config.limits.maxConnections) });
        const addr = app.server.address();
        const port = typeof addr === 'object' && addr !== null ? addr.port : config.listen.port;
        const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
        // The derived default names port 0 when HTTP listens on any free port: name the real one.
        if (httpBase === `http://${host}:${config.listen.port}`) httpBase = `http://${host}:${port}`;
        await native?.listen();
        return `http://${host}:${port}`;
      },
      async close() {
        await native?.close();
        registry.changes.stop();
        await registry.syncWorker?.stop();
        await app.close();
        await registry.upstream.close();
        await registry.store.close();
      },
    };
  } catch (err) {
    registry.changes.stop();
    await registry.store.close();
    throw err;
  }
}
