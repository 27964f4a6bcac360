/**
 * The config schema: every key declared once. The `Config` type, validation of the file and
 * the environment, `idnode --help` and README's Configuration table all come from CONFIG_KEYS.
 *
 * To add a key: add one entry to CONFIG_KEYS (dotted name, kind, default, bounds, env, doc),
 * read it as `config.group.name`, run `npm run docs:config` to rewrite README's table.
 * Env names are `IDNODE_` + the dotted name in SCREAMING_SNAKE case (test/config.test.ts
 * checks). Every size, count and duration gets a `max`, so a typo cannot exhaust the machine.
 */

interface Common {
  env: `IDNODE_${string}`;
  /** Markdown, one sentence or two: what the key does (README renders it as is, help without backticks). */
  doc: string;
  /** What the default means when the value itself would mislead (e.g. '' = derived). */
  defaultText?: string;
}

export type KeySpec =
  | (Common & { kind: 'string'; default: string; maxLength: number })
  | (Common & { kind: 'url'; default: string; maxLength: number })
  | (Common & { kind: 'enum'; default: string; values: readonly string[] })
  | (Common & { kind: 'bool'; default: boolean })
  | (Common & { kind: 'int'; default: number; min: number; max: number; unit?: 'bytes' | 'ms' | 'seconds' })
  | (Common & { kind: 'prefixes'; default: readonly string[]; maxItems: number });

export type Kind = KeySpec['kind'];

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const URL_MAX = 2048;
const PATH_MAX = 4096;

export const CONFIG_KEYS = {
  'listen.host': { kind: 'string', default: '127.0.0.1', maxLength: 253, env: 'IDNODE_LISTEN_HOST', doc: 'address the HTTP server listens on' },
  'listen.port': { kind: 'int', default: 8000, min: 0, max: 65535, env: 'IDNODE_LISTEN_PORT', doc: 'port of the HTTP server (0 = any free port)' },
  baseUrl: {
    kind: 'url',
    default: '',
    defaultText: '`http://<listen.host>:<listen.port>`',
    maxLength: URL_MAX,
    env: 'IDNODE_BASE_URL',
    doc: 'public base URL of this node; published in `HS_SITE` values',
  },
  db: { kind: 'string', default: 'data/idnode.db', maxLength: PATH_MAX, env: 'IDNODE_DB', doc: 'the SQLite file (`store.engine` `sqlite`)' },
  'store.engine': {
    kind: 'enum',
    default: 'sqlite',
    values: ['sqlite', 'postgres'],
    env: 'IDNODE_STORE_ENGINE',
    doc: '`sqlite`: one embedded file (`db`), one machine; `postgres`: a PostgreSQL primary (`store.url`) shared by any number of nodes',
  },
  'store.url': {
    kind: 'string',
    default: '',
    defaultText: 'none',
    maxLength: URL_MAX,
    env: 'IDNODE_STORE_URL',
    doc: 'the PostgreSQL primary, e.g. `postgres://idnode:pw@db1,db2/idnode?target_session_attrs=primary` (several hosts: a promoted standby is found); never shown by `/metrics` or `/readyz`',
  },
  'store.readUrl': {
    kind: 'string',
    default: '',
    defaultText: '`store.url`',
    maxLength: URL_MAX,
    env: 'IDNODE_STORE_READ_URL',
    doc: 'hot standbys for cache misses, lineage, history and listing (e.g. `…?target_session_attrs=prefer-standby`); writes and the change feed stay on the primary',
  },
  'store.connections': {
    kind: 'int',
    default: 2,
    min: 1,
    max: 64,
    env: 'IDNODE_STORE_CONNECTIONS',
    doc: 'pipelined PostgreSQL connections per process and URL (a few pipelined connections cost less server CPU per query than many)',
  },
  'store.auditPartitionEntries': {
    kind: 'int',
    default: 10_000_000,
    min: 200,
    max: 1_000_000_000_000,
    env: 'IDNODE_STORE_AUDIT_PARTITION_ENTRIES',
    doc: 'PostgreSQL: audit entries per range partition of the audit log (made ahead of the head as it grows); a change applies to partitions made from then on',
  },
  'store.statementTimeoutMs': {
    kind: 'int',
    default: 5000,
    min: 10,
    max: 600_000,
    unit: 'ms',
    env: 'IDNODE_STORE_STATEMENT_TIMEOUT_MS',
    doc:
      'the longest a PostgreSQL query may wait for its answer, and a write transaction for its next one (its commit included): past it the request gets 503 `IDN_UNAVAILABLE` (a write then may or may not be stored) and the connections are replaced; ' +
      "also the server's `statement_timeout` and `lock_timeout` in write transactions and `idle_in_transaction_session_timeout`",
  },
  'store.connectTimeoutMs': {
    kind: 'int',
    default: 5000,
    min: 10,
    max: 600_000,
    unit: 'ms',
    env: 'IDNODE_STORE_CONNECT_TIMEOUT_MS',
    doc: 'the longest a new PostgreSQL connection may take to be ready (per host of `store.url`)',
  },
  // maxItems: routing matches a missed prefix against the homed ones one by one.
  homed: { kind: 'prefixes', default: ['88.100'], maxItems: 1000, env: 'IDNODE_HOMED', doc: 'prefixes this node is responsible for' },
  'upstream.url': {
    kind: 'url',
    default: '',
    defaultText: 'none',
    maxLength: URL_MAX,
    env: 'IDNODE_UPSTREAM_URL',
    doc: 'the parent node; new prefixes are `active` at once when there is no upstream, `pending` until the upstream accepts them otherwise',
  },
  'upstream.token': {
    kind: 'string',
    default: '',
    defaultText: 'none',
    maxLength: 1024,
    env: 'IDNODE_UPSTREAM_TOKEN',
    doc: 'a `node` token issued by the upstream, for sync reports',
  },
  'upstream.timeoutMs': {
    kind: 'int',
    default: 5000,
    min: 1,
    max: 600_000,
    unit: 'ms',
    env: 'IDNODE_UPSTREAM_TIMEOUT_MS',
    doc: 'bounds each phase of a forwarded request (connect, headers, body) → 504',
  },
  'upstream.deadlineMs': {
    kind: 'int',
    default: 10_000,
    min: 1,
    max: 600_000,
    unit: 'ms',
    env: 'IDNODE_UPSTREAM_DEADLINE_MS',
    doc: 'bounds a whole request to another node (connect, headers and the entire body, however slowly it trickles in) → 504',
  },
  'upstream.maxInFlight': {
    kind: 'int',
    default: 256,
    min: 1,
    max: 100_000,
    env: 'IDNODE_UPSTREAM_MAX_IN_FLIGHT',
    doc: 'requests in flight per origin; more → 503/3 at once',
  },
  'upstream.maxResponseBytes': {
    kind: 'int',
    default: MiB,
    min: KiB,
    max: 256 * MiB,
    unit: 'bytes',
    env: 'IDNODE_UPSTREAM_MAX_RESPONSE_BYTES',
    doc: 'largest answer accepted from another node; a larger one → 502',
  },
  'upstream.failuresToDown': {
    kind: 'int',
    default: 5,
    min: 1,
    max: 1000,
    env: 'IDNODE_UPSTREAM_FAILURES_TO_DOWN',
    doc: 'failures in a row that mark an origin down (callers fail fast with 503/3)',
  },
  'upstream.downCooldownMs': {
    kind: 'int',
    default: 10_000,
    min: 1,
    max: 3_600_000,
    unit: 'ms',
    env: 'IDNODE_UPSTREAM_DOWN_COOLDOWN_MS',
    doc: 'how long an origin stays down until one probe request is let through',
  },
  'sync.statsIntervalSeconds': {
    kind: 'int',
    default: 60,
    min: 0,
    max: 86400,
    unit: 'seconds',
    env: 'IDNODE_SYNC_STATS_INTERVAL_SECONDS',
    doc: 'statistics reports to the upstream every this many seconds (0: no statistics reports)',
  },
  'sync.retryMaxMs': {
    kind: 'int',
    default: 30_000,
    min: 100,
    max: 3_600_000,
    unit: 'ms',
    env: 'IDNODE_SYNC_RETRY_MAX_MS',
    doc: 'longest wait between two attempts to send a report',
  },
  'sync.leaseMs': {
    kind: 'int',
    default: 60_000,
    min: 1000,
    max: 3_600_000,
    unit: 'ms',
    env: 'IDNODE_SYNC_LEASE_MS',
    doc: 'how long a node that claimed a report to send keeps it from the other nodes on the same database; a node that dies mid-send gives it back after this (keep it above `upstream.deadlineMs`: a send that outlives its lease may be sent twice, which the upstream drops by its idempotency key)',
  },
  'cache.maxBytes': {
    kind: 'int',
    default: 256 * MiB,
    min: 0,
    max: 64 * GiB,
    unit: 'bytes',
    env: 'IDNODE_CACHE_MAX_BYTES',
    doc: 'memory of the answer cache, counted as answer + key characters (twice for non-ASCII) + 280 bytes per entry (0 turns the cache off)',
  },
  'cache.notFoundTtlSeconds': {
    kind: 'int',
    default: 5,
    min: 0,
    max: 86400,
    unit: 'seconds',
    env: 'IDNODE_CACHE_NOT_FOUND_TTL_SECONDS',
    doc: 'how long a not-found answer is cached (a write to the identifier drops it at once)',
  },
  'cache.admission': {
    kind: 'bool',
    default: true,
    env: 'IDNODE_CACHE_ADMISSION',
    doc: 'TinyLFU admission: a local miss is cached only when its identifier was asked for before within the recent window, and, when the cache is full, only when it is asked for more often than the answer it would evict (false: every miss is cached)',
  },
  'cache.admissionCounters': {
    kind: 'int',
    default: 0,
    min: 0,
    max: 1 << 26,
    env: 'IDNODE_CACHE_ADMISSION_COUNTERS',
    defaultText: 'derived',
    doc: "counters per row of the admission policy's frequency sketch (4 rows of 4-bit counters and a doorkeeper filter of the keys asked for once: 6 bytes per counter in all; rounded up to a power of two); 0: derived, about one per cached answer: it starts at one per KiB of `cache.maxBytes` but at most 2^20 (6 MiB), and doubles as the cached answers pass it, up to one per 280 bytes of `cache.maxBytes` and at most 2^24 (96 MiB). The counts are halved, and the doorkeeper emptied, every 10 × this many requests",
  },
  'cache.keyFilterMaxBytes': {
    kind: 'int',
    default: 64 * MiB,
    min: 0,
    max: 256 * MiB,
    unit: 'bytes',
    env: 'IDNODE_CACHE_KEY_FILTER_MAX_BYTES',
    doc:
      'memory of the key filter (a Bloom filter of every registered identifier, filled at start and kept by the change feed) that answers not-found without a store read; ' +
      '2.5 to 5 bytes per record, so the default holds up to about 26 million records, and with more the filter is off and every miss reads the store (0 turns it off). ' +
      'An identifier registered by another process (CLI import, another worker or node) is found once this node has read the change feed (`changes.pollMs` on SQLite), as cached answers are refreshed',
  },
  'cache.staleWindowSeconds': {
    kind: 'int',
    default: 86400,
    min: 0,
    max: 30 * 86400,
    unit: 'seconds',
    env: 'IDNODE_CACHE_STALE_WINDOW_SECONDS',
    doc: 'how long past its ttl a forwarded answer is kept, to be served stale when the upstream fails',
  },
  'limits.bodyMaxBytes': {
    kind: 'int',
    default: 256 * KiB,
    min: KiB,
    max: 64 * MiB,
    unit: 'bytes',
    env: 'IDNODE_LIMITS_BODY_MAX_BYTES',
    doc: "largest JSON request body (Handle.Net's message limit is 256 KiB)",
  },
  'limits.batchMax': {
    kind: 'int',
    default: 1000,
    min: 1,
    max: 100_000,
    env: 'IDNODE_LIMITS_BATCH_MAX',
    doc: 'identifiers per `POST /api/resolve`',
  },
  'limits.valuesMax': { kind: 'int', default: 2048, min: 1, max: 100_000, env: 'IDNODE_LIMITS_VALUES_MAX', doc: 'values per record' },
  'limits.pageSizeMax': {
    kind: 'int',
    default: 10000,
    min: 1,
    max: 1_000_000,
    env: 'IDNODE_LIMITS_PAGE_SIZE_MAX',
    doc: 'largest page of `GET /api/handles?prefix=` and of record history',
  },
  'limits.listAllMax': {
    kind: 'int',
    default: 10000,
    min: 1,
    max: 1_000_000,
    env: 'IDNODE_LIMITS_LIST_ALL_MAX',
    doc: 'most identifiers `GET /api/handles?prefix=` returns when asked for all of them (no or a negative `page`/`pageSize`); more → 400 saying to page',
  },
  'limits.jsonMaxDepth': {
    kind: 'int',
    default: 64,
    min: 2,
    max: 1000,
    env: 'IDNODE_LIMITS_JSON_MAX_DEPTH',
    doc: 'deepest nesting of arrays and objects in a JSON body or a bulk NDJSON line (deeper → 400)',
  },
  'limits.bulkLineMaxBytes': {
    kind: 'int',
    default: 256 * KiB,
    min: KiB,
    max: 64 * MiB,
    unit: 'bytes',
    env: 'IDNODE_LIMITS_BULK_LINE_MAX_BYTES',
    doc: 'largest line of a bulk NDJSON upload (the stream as a whole has no limit)',
  },
  'limits.headersTimeoutMs': {
    kind: 'int',
    default: 10_000,
    min: 50,
    max: 600_000,
    unit: 'ms',
    env: 'IDNODE_LIMITS_HEADERS_TIMEOUT_MS',
    doc: 'time a connection has to send a complete request line and headers; then 408 and the connection is closed',
  },
  'limits.requestTimeoutMs': {
    kind: 'int',
    default: 30_000,
    min: 50,
    max: 3_600_000,
    unit: 'ms',
    env: 'IDNODE_LIMITS_REQUEST_TIMEOUT_MS',
    doc: 'time a request body has to arrive in full once the headers are in (bulk NDJSON uploads excepted: see `limits.bodyIdleTimeoutMs`); then 408, or the connection is closed when the answer has begun',
  },
  'limits.bodyIdleTimeoutMs': {
    kind: 'int',
    default: 10_000,
    min: 50,
    max: 600_000,
    unit: 'ms',
    env: 'IDNODE_LIMITS_BODY_IDLE_TIMEOUT_MS',
    doc: 'a streamed bulk upload (`application/x-ndjson`) whose connection moves no byte either way for this long is cut (408, or closed once the answer has begun)',
  },
  'limits.keepAliveTimeoutMs': {
    kind: 'int',
    default: 5000,
    min: 50,
    max: 600_000,
    unit: 'ms',
    env: 'IDNODE_LIMITS_KEEP_ALIVE_TIMEOUT_MS',
    doc: 'an idle keep-alive connection (no request under way) is closed after this long',
  },
  'limits.maxConnections': {
    kind: 'int',
    default: 2048,
    min: 1,
    max: 1_000_000,
    env: 'IDNODE_LIMITS_MAX_CONNECTIONS',
    doc: 'open client connections per process (each worker of `--workers` has its own); a request on a connection over the bound gets 503/3 with `Retry-After: 1`, cache hits included, and the connection is closed (health checks, `/metrics` and admin calls are answered, then closed)',
  },
  'cors.writeOrigins': {
    kind: 'string',
    default: '',
    defaultText: 'none',
    maxLength: 8192,
    env: 'IDNODE_CORS_WRITE_ORIGINS',
    doc: 'comma-separated origins (`https://console.example`) whose browsers may call the routes other than resolution; resolution is open to any origin',
  },
  'bulk.chunkSize': {
    kind: 'int',
    default: 1000,
    min: 1,
    max: 100_000,
    env: 'IDNODE_BULK_CHUNK_SIZE',
    doc: 'lines per committed chunk (one transaction, one audit entry)',
  },
  'lineage.defaultDepth': {
    kind: 'int',
    default: 10,
    min: 1,
    max: 1000,
    env: 'IDNODE_LINEAGE_DEFAULT_DEPTH',
    doc: 'depth of a lineage query that names none (at most `lineage.maxDepth`)',
  },
  'lineage.maxDepth': {
    kind: 'int',
    default: 50,
    min: 1,
    max: 1000,
    env: 'IDNODE_LINEAGE_MAX_DEPTH',
    doc: 'largest depth a lineage query may ask for (deeper asks are 400)',
  },
  'lineage.maxNodes': {
    kind: 'int',
    default: 10000,
    min: 1,
    max: 10_000_000,
    env: 'IDNODE_LINEAGE_MAX_NODES',
    doc: 'nodes per lineage answer (then `truncated: true`)',
  },
  'lineage.eventItemsMax': {
    kind: 'int',
    default: 1000,
    min: 1,
    max: 1_000_000,
    env: 'IDNODE_LINEAGE_EVENT_ITEMS_MAX',
    doc: 'identifiers per event (children, or inputs plus outputs)',
  },
  'audit.verifyConcurrency': {
    kind: 'int',
    default: 1,
    min: 1,
    max: 64,
    env: 'IDNODE_AUDIT_VERIFY_CONCURRENCY',
    doc: 'audit verifications (`GET /api/audit/verify`) running at once per process; one more is 503/3 with `Retry-After: 5`',
  },
  'audit.verifySlice': {
    kind: 'int',
    default: 500,
    min: 1,
    max: 1_000_000,
    env: 'IDNODE_AUDIT_VERIFY_SLICE',
    doc: 'audit entries or table rows a verification checks before it yields to other requests',
  },
  'sqlite.cacheBytes': {
    kind: 'int',
    default: 64 * MiB,
    min: MiB,
    max: 64 * GiB,
    unit: 'bytes',
    env: 'IDNODE_SQLITE_CACHE_BYTES',
    doc: 'SQLite page cache per connection (per worker)',
  },
  'sqlite.mmapBytes': {
    kind: 'int',
    default: 64 * GiB,
    min: 0,
    max: 1024 * GiB,
    unit: 'bytes',
    env: 'IDNODE_SQLITE_MMAP_BYTES',
    doc:
      'bytes of the database file read through mmap instead of read() calls (0: off; capped at 256 GiB by the SQLite that `npm ci` builds, 2 GiB − 64 KiB where that build failed). ' +
      'Mapped pages count in the process\'s RSS as file-backed pages (bench/README.md, "Memory")',
  },
  history: {
    kind: 'bool',
    default: true,
    env: 'IDNODE_HISTORY',
    doc: 'keep record versions and the audit chain; `false` only for throwaway nodes (the registration benchmark measures the cost)',
  },
  'shedding.maxInFlight': {
    kind: 'int',
    default: 1024,
    min: 0,
    max: 1_000_000,
    env: 'IDNODE_SHEDDING_MAX_IN_FLIGHT',
    doc: 'requests in flight past the cache-hit fast path (misses, writes, forwarding); more → 503/3 with `Retry-After: 1` at once (0: no bound). Health checks, `/metrics` and admin calls always pass (see Operations)',
  },
  'shedding.eventLoopDelayMs': {
    kind: 'int',
    default: 200,
    min: 0,
    max: 60_000,
    unit: 'ms',
    env: 'IDNODE_SHEDDING_EVENT_LOOP_DELAY_MS',
    doc:
      'while the 90th percentile of event-loop delay over the last second is above this, or the current turn of the loop is this far behind, requests past the fast path get 503/3 (0: off). ' +
      '`/healthz`, `/readyz`, `/metrics` and admin calls are never shed; why 200 ms and p90: see Operations',
  },
  'changes.pollMs': {
    kind: 'int',
    default: 20,
    min: 1,
    max: 60_000,
    unit: 'ms',
    env: 'IDNODE_CHANGES_POLL_MS',
    doc:
      'how often a node checks the SQLite file for writes by other processes (CLI, other workers) and drops what they changed from its cache; ' +
      'its own writes apply at once',
  },
  'changes.backstopMs': {
    kind: 'int',
    default: 500,
    min: 1,
    max: 600_000,
    unit: 'ms',
    env: 'IDNODE_CHANGES_BACKSTOP_MS',
    doc: "with PostgreSQL, nodes learn of each other's writes by LISTEN/NOTIFY at once, and re-read the change feed this often besides (a notification is lost while its connection is down)",
  },
  'changes.retention': {
    kind: 'int',
    default: 100_000,
    min: 1,
    max: 100_000_000,
    env: 'IDNODE_CHANGES_RETENTION',
    doc: 'change-feed rows kept; a node that fell further behind drops its whole answer cache',
  },
  'native.port': {
    kind: 'int',
    default: 0,
    min: 0,
    max: 65535,
    env: 'IDNODE_NATIVE_PORT',
    doc: 'port of the native Handle protocol (RFC 3652, TCP and UDP on the same port; 0 = off). The Handle default is 2641, IDIS nodes use 3641',
  },
  'native.host': {
    kind: 'string',
    default: '127.0.0.1',
    maxLength: 253,
    env: 'IDNODE_NATIVE_HOST',
    doc: 'address the native TCP and UDP listeners bind; also the server address in the `GET_SITE_INFO` answer',
  },
  'native.maxInFlight': {
    kind: 'int',
    default: 1024,
    min: 1,
    max: 1_000_000,
    env: 'IDNODE_NATIVE_MAX_IN_FLIGHT',
    doc: 'native requests past the cache (store misses answered later, forwarded identifiers) at once; more are answered 3 (server too busy)',
  },
  'native.maxMessageBytes': {
    kind: 'int',
    default: 65_536,
    min: 512,
    max: 262_144,
    unit: 'bytes',
    env: 'IDNODE_NATIVE_MAX_MESSAGE_BYTES',
    doc: 'largest native request accepted; a larger UDP datagram is dropped, a TCP connection announcing one is closed',
  },
  'native.idleTimeoutMs': {
    kind: 'int',
    default: 30_000,
    min: 100,
    max: 3_600_000,
    unit: 'ms',
    env: 'IDNODE_NATIVE_IDLE_TIMEOUT_MS',
    doc: 'a native TCP connection with no traffic for this long is closed',
  },
  'native.udpMaxResponseBytes': {
    kind: 'int',
    default: 16_384,
    min: 492,
    max: 262_144,
    unit: 'bytes',
    env: 'IDNODE_NATIVE_UDP_MAX_RESPONSE_BYTES',
    doc: 'largest answer sent over UDP (split in 512-byte datagrams, as Handle clients expect); a larger one gets a truncated, empty reply and clients ask again over TCP',
  },
  workers: {
    kind: 'int',
    default: 1,
    min: 1,
    max: 64,
    env: 'IDNODE_WORKERS',
    doc:
      '`idnode serve --workers N`: N processes (node:cluster) share the port and the SQLite file (WAL, busy timeout 5 s), each with its own cache; ' +
      'each follows the change feed, so a write on one worker reaches the others within `changes.pollMs` (measured: 3-22 ms); one worker sends the sync reports',
  },
  shutdownTimeoutMs: {
    kind: 'int',
    default: 10_000,
    min: 0,
    max: 3_600_000,
    unit: 'ms',
    env: 'IDNODE_SHUTDOWN_TIMEOUT_MS',
    doc:
      'on SIGTERM/SIGINT, stop accepting, let requests in flight (bulk uploads included) finish, stop the sync worker, close SQLite; ' +
      'exit 1 if that takes longer',
  },
  'face.redirect': {
    kind: 'bool',
    default: false,
    env: 'IDNODE_FACE_REDIRECT',
    doc: "browsers opening a short URL `/{prefix}/{suffix}` are sent (302) to the record's first http(s) `URL` value, as the Handle proxy does; `?noredirect` shows the page",
  },
  'face.labelsMax': {
    kind: 'int',
    default: 200,
    min: 1,
    max: 5000,
    env: 'IDNODE_FACE_LABELS_MAX',
    doc: 'QR labels on one `/labels` sheet',
  },
  'face.sessionSecret': {
    kind: 'string',
    default: '',
    defaultText: 'generated once, kept in `<db>.face-secret`',
    maxLength: 1024,
    env: 'IDNODE_FACE_SESSION_SECRET',
    doc: 'HMAC key that signs the session cookie of auditors logged in to the pages (`/login`)',
  },
  'face.sessionSeconds': {
    kind: 'int',
    default: 3600,
    min: 60,
    max: 604_800,
    unit: 'seconds',
    env: 'IDNODE_FACE_SESSION_SECONDS',
    doc: 'how long a page login lasts',
  },
  seed: { kind: 'bool', default: false, env: 'IDNODE_SEED', doc: 'on start, seed an empty database from `seedDir` (`npm start` sets it)' },
  seedDir: {
    kind: 'string',
    default: '',
    defaultText: 'the `seeds/` shipped with idnode',
    maxLength: PATH_MAX,
    env: 'IDNODE_SEED_DIR',
    doc: 'folder with `prefixes.json` and `records.ndjson` to seed from',
  },
  logRequests: {
    kind: 'bool',
    default: false,
    env: 'IDNODE_LOG_REQUESTS',
    doc: 'log a line per request (costs ~1.6x CPU on the hot path)',
  },
  logLevel: {
    kind: 'enum',
    default: 'info',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    env: 'IDNODE_LOG_LEVEL',
    doc: 'level of the pino JSON log lines',
  },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof CONFIG_KEYS;

/** Checks that involve more than one key, run after every layer is applied; an answer is the message. */
export const CROSS_CHECKS: ReadonlyArray<(c: Record<ConfigKey, unknown>) => string | undefined> = [
  (c) =>
    (c['lineage.defaultDepth'] as number) > (c['lineage.maxDepth'] as number)
      ? `config key "lineage.defaultDepth" (${String(c['lineage.defaultDepth'])}) must not exceed "lineage.maxDepth" (${String(c['lineage.maxDepth'])})`
      : undefined,
  (c) =>
    c['store.engine'] === 'postgres' && c['store.url'] === ''
      ? 'config key "store.url" must name the PostgreSQL primary when "store.engine" is postgres (e.g. postgres://idnode@127.0.0.1:5432/idnode)'
      : undefined,
  (c) => {
    for (const key of ['store.url', 'store.readUrl'] as const) {
      const v = c[key] as string;
      if (v !== '' && !/^postgres(ql)?:\/\//.test(v)) return `config key "${key}" must be a postgres:// URL, got a value starting "${v.slice(0, 12)}"`;
    }
    return undefined;
  },
];

// The Config type, inferred: 'a.b' keys become nested groups, each leaf typed by its kind.
type ValueOf<S> = S extends { kind: 'int' }
  ? number
  : S extends { kind: 'bool' }
    ? boolean
    : S extends { kind: 'prefixes' }
      ? string[]
      : S extends { kind: 'enum'; values: readonly (infer V)[] }
        ? V
        : string;
type Leaves<T> = { -readonly [K in keyof T as K extends `${string}.${string}` ? never : K]: ValueOf<T[K]> };
type GroupName<K> = K extends `${infer G}.${string}` ? G : never;
type Members<T, G extends string> = { [K in keyof T as K extends `${G}.${infer Rest}` ? Rest : never]: T[K] };
type Groups<T> = { -readonly [G in GroupName<keyof T>]: Shape<Members<T, G>> };
type Shape<T> = Leaves<T> & Groups<T> extends infer O ? { [K in keyof O]: O[K] } : never;

export type Config = Shape<typeof CONFIG_KEYS>;
