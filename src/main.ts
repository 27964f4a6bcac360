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
import { createResolver, type Resolver } from './resolver/index.js';
import { buildApp } from './server/app.js';
import { createMetrics } from './server/metrics.js';
import type { NodeDeps } from './server/deps.js';
import { createFastPath } from './server/fastpath.js';
import { createNativeServer, type NativeServer } from './native/server.js';
import { isoSeconds, Store } from './store/index.js';
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
}

/** Store, routing, cache and registries: everything but HTTP (the CLI uses this alone). */
/** What one process tells the others of a cluster so their caches stay right. */
export type PeerMessage = { t: 'keys'; keys: string[] } | { t: 'prefix'; key: string } | { t: 'templates' };

/** Observers the HTTP layer's metrics attach (the CLI runs without). */
export interface Hooks {
  /** A write here changed cached state: tell the other workers. */
  onLocalChange?: (msg: PeerMessage) => void;
  onWrite?: (ms: number) => void;
  onUpstream?: (base: string, ms: number, failure: string | undefined) => void;
  onBulk?: (records: number) => void;
}

export function openRegistry(config: Config, hooks: Hooks = {}): Registry {
  const store = new Store(config.db, {
    history: config.history,
    cacheBytes: config.sqlite.cacheBytes,
    mmapBytes: config.sqlite.mmapBytes,
    ...(hooks.onWrite ? { onWrite: hooks.onWrite } : {}),
  });
  const router = createRouter({ store, homed: config.homed, upstreamUrl: config.upstream.url });
  const late: { resolver?: Resolver } = {};
  const prefixes = createPrefixes({
    store,
    router,
    homed: config.homed,
    baseUrl: config.baseUrl,
    hasUpstream: config.upstream.url !== '',
    startedAt: isoSeconds(new Date()),
    // A prefix change can re-route the identifiers under it: drop their cached answers.
    onChange: (prefixKey) => {
      late.resolver?.invalidateUnder(prefixKey);
      hooks.onLocalChange?.({ t: 'prefix', key: prefixKey });
    },
  });
  const upstream = createUpstreamClient({
    timeoutMs: config.upstream.timeoutMs,
    deadlineMs: config.upstream.deadlineMs,
    maxInFlight: config.upstream.maxInFlight,
    maxResponseBytes: config.upstream.maxResponseBytes,
    failuresToDown: config.upstream.failuresToDown,
    downCooldownMs: config.upstream.downCooldownMs,
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
  });
  late.resolver = resolver;
  const stats = createNodeStats();
  const templates = createTemplates({ store, onChange: () => hooks.onLocalChange?.({ t: 'templates' }) });
  const records = createRecords({
    store,
    templates,
    valuesMax: config.limits.valuesMax,
    onChange: (key) => {
      resolver.invalidate(key);
      hooks.onLocalChange?.({ t: 'keys', keys: [key] });
      stats.registration();
    },
  });
  const bulk = createBulk({
    store,
    templates,
    valuesMax: config.limits.valuesMax,
    lineMaxBytes: config.limits.bulkLineMaxBytes,
    chunkSize: config.bulk.chunkSize,
    onWritten: (keys) => {
      hooks.onBulk?.(keys.length);
      if (keys.length > 0) hooks.onLocalChange?.({ t: 'keys', keys });
      for (const key of keys) {
        resolver.invalidate(key);
        stats.registration();
      }
    },
  });
  const tokens = createTokens({ store, homedAncestor: router.homedAncestor });
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
          statsIntervalSeconds: config.sync.statsIntervalSeconds,
          stats,
          onPrefixAccepted: (p) => prefixes.accept(p),
        });
  const syncReceiver = createSyncReceiver({ store });
  return { config, store, router, resolver, upstream, records, bulk, templates, prefixes, tokens, events, auditing, stats, syncReceiver, syncWorker };
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
  /** The other workers of a cluster: what this one changes is published, what they change applied. */
  peers?: { publish(msg: PeerMessage): void; subscribe(apply: (msg: PeerMessage) => void): void };
  /** Run the sync worker (one process of a cluster does). Default true. */
  runSync?: boolean;
}

/** Applies another worker's change to this worker's caches. */
export function applyPeerMessage(registry: Registry, msg: PeerMessage): void {
  if (msg.t === 'keys') for (const key of msg.keys) registry.resolver.invalidate(key);
  else if (msg.t === 'prefix') {
    registry.router.reload();
    registry.resolver.invalidateUnder(msg.key);
  } else registry.templates.reload();
}

export async function createNode(config: Config, opts: NodeOptions = {}): Promise<IdNode> {
  // The metrics and the fast path read parts built after them.
  const late: { registry?: Registry; app?: FastifyInstance } = {};
  const metrics = createMetrics({ resolver: () => late.registry!.resolver, upstream: () => late.registry!.upstream });
  const registry = openRegistry(config, {
    onWrite: metrics.storeWrite,
    onUpstream: metrics.upstreamResult,
    onBulk: metrics.bulkRecords,
    ...(opts.peers ? { onLocalChange: opts.peers.publish } : {}),
  });
  late.registry = registry;
  opts.peers?.subscribe((msg) => applyPeerMessage(registry, msg));
  try {
    if (opts.adminToken) registry.tokens.bootstrapAdmin(opts.adminToken);
    if (config.seed) seedIfEmpty(registry, config.seedDir === '' ? SEEDS_DIR : config.seedDir);
    const deps: NodeDeps = { ...registry, metrics };
    const fastPath = createFastPath(registry.resolver, registry.stats, metrics, {
      overloaded: () => late.app?.shedder.overloaded() ?? false,
      refuse: () => (late.app === undefined ? 'the node is starting' : late.app.shedder.refuse()),
      done: () => late.app?.shedder.done(),
      logError: (err, message) => late.app?.log.error({ err }, message),
    });
    const app = await buildApp(deps, {
      logger: opts.logger ?? false,
      serverFactory: (handler) => createServer((req, res) => (fastPath(req, res) ? undefined : handler(req, res))),
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
        await app.listen({ host: config.listen.host, port: config.listen.port });
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
        await registry.syncWorker?.stop();
        await app.close();
        await registry.upstream.close();
        registry.store.close();
      },
    };
  } catch (err) {
    registry.store.close();
    throw err;
  }
}
