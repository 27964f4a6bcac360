/**
 * The storage contract: the write transaction and the engine interface, grouped by aggregate;
 * the row types are in rows.ts. Types only; an engine (src/store/sqlite/) implements them.
 */
import type {
  RecordRow,
  AnswerRow,
  PrefixRow,
  TokenRow,
  AuditRow,
  WriteEntry,
  VersionRow,
  EdgeRow,
  WalkRow,
  OutboxRow,
  ReportRow,
  TemplateRow,
  EventRow,
  AuditVerdict,
  ChangeKind,
  ChangeRow,
  AuditEntryFull,
  EntryVersion,
  VerifyProgress,
} from './rows.js';
import type { AuditedTableName } from './chain.js';

export type * from './rows.js';

/** What `apply` returns: payload null means nothing was written (no audit entry). */
export interface WriteOutcome<T> {
  result: T;
  payload: string | null;
  /** Overrides the entry's action once apply knows what it did (create vs update). */
  action?: string;
  /** Keep the payload itself (prefixes, tokens, events) so verification can check it. */
  keepPayload?: boolean;
}

/** What a write may do; only reachable inside `StoreEngine.write`. Reads a write needs are here too. */
export interface WriteTx {
  readonly at: string;
  /** The audit sequence number this write's entry will have. */
  readonly seq: number;
  /** Reads through the write transaction: they see what this write did so far. */
  getRecord(handleKey: string): Promise<RecordRow | undefined>;
  /**
   * The record's newest version when it is a deletion (with history; undefined without), as
   * this write sees it: earlier writes of its PostgreSQL batch included. Optional: without it,
   * callers read `versionAsOf` of the committed state.
   */
  tombstone?(handleKey: string): Promise<RecordTombstone | undefined>;
  getPrefix(prefixKey: string): Promise<PrefixRow | undefined>;
  reportByKey(reporter: string, idemKey: string): Promise<ReportRow | undefined>;
  /** Stores a record version (values null = deleted) and makes it current. */
  putRecord(row: Omit<RecordRow, 'version' | 'updatedAt'>): Promise<number>;
  deleteRecord(handleKey: string, handle: string): Promise<number>;
  putPrefix(row: PrefixRow): Promise<void>;
  deletePrefix(prefixKey: string): Promise<void>;
  insertToken(row: TokenRow): Promise<void>;
  revokeToken(id: string): Promise<void>;
  insertEvent(row: EventRow): Promise<number>;
  /** Opens an edge; returns false when an open edge from→to (same type) already exists. */
  openEdge(fromKey: string, toKey: string, type: string, since: string, eventId: number): Promise<boolean>;
  /** Closes the open edge from→to valid at `until`; returns false when there is none. */
  closeEdge(fromKey: string, toKey: string, type: string, until: string, eventId: number): Promise<boolean>;
  /** Open edges from `fromKey` of `type` (an aggregation DELETE with no children empties the parent). */
  openChildren(fromKey: string, type: string): Promise<string[]>;
  /** Remembers the spelling an identifier was first named with in an event. */
  nameIdentifier(key: string, handle: string): Promise<void>;
  /**
   * Set-based lineage for a bulk chunk (optional: callers fall back to the one-at-a-time
   * methods). Each gives what the calls one after another, in order, would: the same edge ids,
   * the same first spellings. `openChildrenMany` answers `openChildren` per (fromKey, type).
   */
  openChildrenMany?(pairs: ReadonlyArray<readonly [fromKey: string, type: string]>): Promise<string[][]>;
  openEdges?(edges: ReadonlyArray<readonly [fromKey: string, toKey: string, type: string, since: string, eventId: number]>): Promise<boolean[]>;
  nameIdentifiers?(names: ReadonlyArray<readonly [key: string, handle: string]>): Promise<void>;
  /** Queues a report for the upstream, sent after this write commits. */
  enqueueReport(kind: string, idemKey: string, bodyJson: string): Promise<void>;
  /** Stores a report received from a child node. */
  insertReport(row: Omit<ReportRow, 'id' | 'receivedAt'>): Promise<number>;
  putTemplate(row: TemplateRow): Promise<void>;
  markTemplateUsed(prefixKey: string, version: string): Promise<void>;
  /**
   * Records a change in the feed. The methods above record theirs themselves; this is for a
   * write that changes cached state some other way.
   */
  changed(kind: ChangeKind, key: string): void;
}

/** A record whose newest version is a deletion. */
export interface RecordTombstone {
  /** The spelling the identifier had. */
  handle: string;
  /** When it was deleted (ISO seconds). */
  at: string;
  /** Who deleted it (a token id). */
  actor: string;
}

/**
 * What a write tells the engine before it runs (optional): the records it will read or
 * change. PostgreSQL loads them, with their newest versions, in the statement that follows
 * the chain head's lock, instead of one read per record while holding it; SQLite in two
 * statements at the start of the write, instead of three reads per record.
 */
export interface WriteHint {
  keys?: readonly string[];
}

export interface StoreOptions {
  now?: () => Date;
  readonly?: boolean;
  /**
   * Keep record versions and the audit chain (default true). Off only for throwaway nodes
   * (the registration benchmark measures what they cost).
   */
  history?: boolean;
  /** Called with the duration of every committed write, ms (metrics). */
  onWrite?: (ms: number) => void;
  /** SQLite page cache of this connection, bytes (default 64 MiB). */
  cacheBytes?: number;
  /** Bytes of the file SQLite reads through mmap instead of read() calls (default 64 GiB; 0: off). */
  mmapBytes?: number;
  /** Change-feed rows kept (default 100000); a follower further behind drops its whole cache. */
  changesRetention?: number;
  /** PostgreSQL: audit entries per range partition of the log (default 10000000; existing partitions keep theirs). */
  auditPartitionEntries?: number;
}

/** Tables an escrow export carries (tokens and the outbox stay with the node). */
export type EscrowTable =
  'prefixes' | 'records' | 'record_versions' | 'audit_log' | 'audit_payloads' | 'templates' | 'events' | 'edges' | 'lineage_names' | 'sync_reports';

export interface RecordReads {
  getRecord(handleKey: string): Promise<RecordRow | undefined>;
  /** What a resolution needs of a record, as an array (the cold-read path: no row object, no unused columns). */
  answerRow(handleKey: string): Promise<AnswerRow | undefined>;
  listRecordHandles(prefixKey: string, limit: number, offset: number): Promise<string[]>;
  /**
   * Keyset listing: handles of `prefixKey`'s records whose key follows `afterKey` ('' from the
   * start), in key order, with their keys as the next cursor. An offset costs a scan of every
   * row it skips; a key costs one index seek.
   */
  listRecordsAfter(prefixKey: string, afterKey: string, limit: number): Promise<Array<{ key: string; handle: string }>>;
  /** Record keys after `afterKey` ('' from the start), in key order, from the primary (the resolver's key filter). */
  recordKeysAfter(afterKey: string, limit: number): Promise<string[]>;
  countRecords(prefixKey: string): Promise<number>;
  /** Records whose prefix is `prefixKey` or lies under it. */
  countRecordsUnder(prefixKey: string): Promise<number>;
  totalRecords(): Promise<number>;
  /** Versions of a record after `afterVersion`, oldest first, at most `limit`. */
  versions(handleKey: string, afterVersion: number, limit: number): Promise<VersionRow[]>;
  /** The version current at `at` (ISO seconds), deleted ones included. */
  versionAsOf(handleKey: string, at: string): Promise<VersionRow | undefined>;
}

export interface PrefixReads {
  getPrefix(prefixKey: string): Promise<PrefixRow | undefined>;
  allPrefixes(): Promise<PrefixRow[]>;
}

export interface TokenReads {
  tokenByHash(hash: string): Promise<TokenRow | undefined>;
  tokenById(id: string): Promise<TokenRow | undefined>;
  listTokens(): Promise<TokenRow[]>;
  activeAdminCount(): Promise<number>;
}

export interface TemplateReads {
  allTemplates(): Promise<TemplateRow[]>;
}

export interface AuditReads {
  auditPage(afterSeq: number, limit: number): Promise<AuditRow[]>;
  auditHead(): Promise<{ seq: number; hash: string }>;
  /**
   * Walks the whole chain and compares every audited table with what it wrote. Engines
   * implement it as `verifyChain(this)` (src/store/verify.ts) over the reads below.
   */
  verifyAudit(opts?: VerifyOptions): Promise<AuditVerdict>;
}

export interface VerifyOptions {
  /** Entries or rows checked between two yields to the event loop (default 500). */
  sliceEntries?: number;
  onProgress?: (p: VerifyProgress) => void;
  /** Tables not compared (a restore carries no tokens: it checks them later, see restoredThrough). */
  skipTables?: readonly AuditedTableName[];
}

/**
 * The few reads engine-independent verification (src/store/verify.ts) needs; a second engine
 * implements only these to be verifiable.
 */
export interface AuditVerifyReads {
  auditHead(): Promise<{ seq: number; hash: string }>;
  /** Entries after `afterSeq` in seq order, at most `limit`, with payload and write set. */
  auditEntries(afterSeq: number, limit: number): Promise<AuditEntryFull[]>;
  /** The record versions whose audit_seq is `seq` (any order). */
  entryVersions(seq: number): Promise<EntryVersion[]>;
  /**
   * Rows of an audited table after the key `afterKey` (null: from the start), in key order, at
   * most `limit`, each an array in the column order of AUDITED_TABLES (src/store/chain.ts).
   */
  tablePage(table: AuditedTableName, afterKey: readonly unknown[] | null, limit: number): Promise<unknown[][]>;
  /**
   * The audit head seq an escrow restore loaded (0: never restored). A restore carries no
   * tokens, so tokens the log wrote up to it may be absent.
   */
  restoredThrough(): Promise<number>;
}

export interface LineageReads {
  /**
   * Breadth-first walk from `rootKey` (down follows edges from→to, up to→from), one row per
   * (identifier, depth, edge it was reached by), with the identifier's spellings.
   */
  walk(rootKey: string, direction: 'down' | 'up', maxDepth: number, asOf: string, rowLimit: number): Promise<WalkRow[]>;
  /** Edges valid at `asOf` leaving (down) or entering (up) any of `keys`. */
  edgesAt(keys: string[], direction: 'down' | 'up', asOf: string, limit: number): Promise<EdgeRow[]>;
}

/** The outbox of reports to the upstream and the reports received from children. */
export interface OutboxOps {
  /** Reports due to be sent (pending, next attempt time reached), oldest first. */
  dueReports(nowMs: number, limit: number): Promise<OutboxRow[]>;
  /**
   * Claims up to `limit` due reports for one sender, oldest first, in one statement: their next
   * attempt moves to `nowMs + leaseMs`, so every other sender (another node on the same
   * database, another worker) skips them until the sender marks them or the lease runs out (a
   * sender that died gives them back then). Returned as claimed (nextAttemptAt is the lease's end).
   */
  claimReports(nowMs: number, limit: number, leaseMs: number): Promise<OutboxRow[]>;
  outbox(afterId: number, limit: number): Promise<OutboxRow[]>;
  pendingReports(): Promise<number>;
  /** Outbox bookkeeping (not an audited change: the report itself was audited when queued). */
  markReport(id: number, state: 'sent' | 'rejected', error: string | null): Promise<void>;
  retryReport(id: number, nextAttemptAt: number, error: string): Promise<void>;
  reportByKey(reporter: string, idemKey: string): Promise<ReportRow | undefined>;
  reports(afterId: number, limit: number): Promise<ReportRow[]>;
}

/** The change feed other processes' caches follow. */
export interface ChangeReads {
  /** Changes when another connection (CLI, another worker) commits. */
  dataVersion(): Promise<number>;
  /** Feed rows after `cursor`, oldest first. */
  changesAfter(cursor: number, limit: number): Promise<ChangeRow[]>;
  /** The cursor of the newest feed row (0: none yet); pruning always keeps it. */
  changesHead(): Promise<number>;
  /**
   * A capability: calls `wake` as soon as another process may have committed (a notification,
   * or a reconnect, after which notifications may have been lost). The follower then reads the
   * feed at once instead of polling `dataVersion`. Resolves to the unsubscribe.
   */
  watchChanges?(wake: () => void): Promise<() => Promise<void>>;
}

export interface EscrowOps {
  /** Calls `row` for every row of every escrow table, in one consistent snapshot. */
  snapshot(row: (table: string, values: Record<string, unknown>) => void): Promise<void>;
  /** Inserts rows verbatim into an escrow table (restore into an empty database). */
  insertRows(table: EscrowTable, rows: Array<Record<string, unknown>>): Promise<void>;
}

/** A storage engine: the reads of every aggregate, the one audited write path, its lifecycle. */
export interface StoreEngine
  extends RecordReads, PrefixReads, TokenReads, TemplateReads, AuditReads, AuditVerifyReads, LineageReads, OutboxOps, ChangeReads, EscrowOps {
  /** Where the data lives (a file path for SQLite). */
  readonly path: string;
  readonly history: boolean;
  /**
   * The schema version of the opened database (PostgreSQL: the SQLite schema version whose
   * tables it has, so escrow manifests compare across engines).
   */
  readonly schemaVersion: number;
  /** False once closed. */
  isOpen(): boolean;
  /**
   * Registers `fn` to run right after each commit of this engine that changed cached state
   * (the write's promise settles after it); returns the unsubscribe.
   */
  onCommit(fn: () => void | Promise<void>): () => void;
  /**
   * The one write path. `apply` runs inside one transaction and returns the result plus the
   * canonical text of what was written (its SHA-256 is the audit digest). The entry also
   * carries the write's write set: the state at commit of every row of AUDITED_TABLES
   * (chain.ts) that a WriteTx method touched, plus its own audit_payloads row. Writes of one
   * engine run one at a time; reads never see a write before it commits.
   */
  write<T>(entry: WriteEntry, apply: (tx: WriteTx) => Promise<WriteOutcome<T>>, hint?: WriteHint): Promise<T>;
  /**
   * The cache-miss read of a resolution, answered synchronously (an engine capability: the
   * fast path answers misses before fastify when an engine has it, else takes the async path).
   */
  answerRowSync?: (handleKey: string) => AnswerRow | undefined;
  /** A token by its secret's hash, synchronously (a capability: load shedding's admin check needs it). */
  tokenByHashSync?: (hash: string) => TokenRow | undefined;
  /** Waits for queued writes, then closes. */
  close(): Promise<void>;
}
