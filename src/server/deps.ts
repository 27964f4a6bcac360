import type { Config } from '../config.js';
import type { Events } from '../lineage/events.js';
import type { Auditing } from '../lineage/query.js';
import type { Bulk } from '../registry/bulk.js';
import type { Prefixes } from '../registry/prefixes.js';
import type { Records } from '../registry/records.js';
import type { Templates } from '../registry/templates.js';
import type { Tokens } from '../registry/tokens.js';
import type { Resolver } from '../resolver/index.js';
import type { Store } from '../store/index.js';
import type { Metrics } from './metrics.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { Router } from '../upstream/routing.js';
import type { NodeStats, SyncReceiver } from '../upstream/sync.js';

/** Everything the HTTP layer needs, built once by main.ts (or a test). */
export interface NodeDeps {
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
  metrics: Metrics;
  syncReceiver: SyncReceiver;
}
