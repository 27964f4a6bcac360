/**
 * The only module that imports better-sqlite3. WAL, statements prepared once, every write
 * through `write()`: one IMMEDIATE transaction that applies the change and appends the
 * hash-chained audit entry (and, for records, the version row) before it commits.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { IdnError } from '../errors.js';
import { SCHEMA_DIR } from '../paths.js';

export const GENESIS_HASH = '0'.repeat(64);
export interface RecordRow {
  handleKey: string;
  handle: string;
  prefixKey: string;
  valuesJson: string;
  publicJson: string | null;
  version: number;
  updatedAt: string;
}

export interface PrefixRow {
  prefixKey: string;
  prefix: string;
  parentKey: string;
  ownerJson: string;
  site: string | null;
  status: 'pending' | 'active' | 'suspended';
  createdAt: string;
  updatedAt: string;
}

export interface TokenRow {
  id: string;
  role: 'admin' | 'registrar' | 'auditor' | 'node';
  prefixesJson: string;
  secretHash: string;
  label: string | null;
  createdAt: string;
  revokedAt: string | null;
}

export interface AuditRow {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  digest: string;
  prevHash: string;
  hash: string;
}

export interface WriteEntry {
  actor: string;
  action: string;
  target: string;
}

/** What `apply` returns: payload null means nothing was written (no audit entry). */
export interface WriteOutcome<T> {
  result: T;
  payload: string | null;
  /** Overrides the entry's action once apply knows what it did (create vs update). */
  action?: string;
}

/** What a write may do; only reachable inside `Store.write`. */
export interface WriteTx {
  readonly at: string;
  /** Stores a record version (values null = deleted) and makes it current. */
  putRecord(row: Omit<RecordRow, 'version' | 'updatedAt'>): number;
  deleteRecord(handleKey: string, handle: string): number;
  putPrefix(row: PrefixRow): void;
  deletePrefix(prefixKey: string): void;
  insertToken(row: TokenRow): void;
  revokeToken(id: string): void;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function auditHash(prevHash: string, e: Omit<AuditRow, 'hash' | 'prevHash'>): string {
  return sha256(`${prevHash}\n${JSON.stringify([e.seq, e.at, e.actor, e.action, e.target, e.digest])}`);
}

export function isoSeconds(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

export interface StoreOptions {
  now?: () => Date;
  readonly?: boolean;
}

export class Store {
  readonly db: Database.Database;
  readonly path: string;
  private readonly now: () => Date;
  private readonly stmt;

  constructor(path: string, opts: StoreOptions = {}) {
    this.path = path;
    this.now = opts.now ?? (() => new Date());
    if (path !== ':memory:' && !opts.readonly) mkdirSync(dirname(path), { recursive: true });
    try {
      this.db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
    } catch (err) {
      throw new IdnError('IDN_INTERNAL', `cannot open database ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (!opts.readonly) {
      this.db.pragma('journal_mode = WAL');
      // FULL: a write acknowledged to a client survives power loss, not only a crash.
      this.db.pragma('synchronous = FULL');
    }
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    if (!opts.readonly) this.migrate();
    const db = this.db;
    this.stmt = {
      getRecord: db.prepare(
        'SELECT handle_key AS handleKey, handle, prefix_key AS prefixKey, values_json AS valuesJson, public_json AS publicJson, version, updated_at AS updatedAt FROM records WHERE handle_key = ?',
      ),
      listRecords: db.prepare('SELECT handle FROM records WHERE prefix_key = ? ORDER BY handle_key LIMIT ? OFFSET ?').pluck(),
      countRecords: db.prepare('SELECT count(*) FROM records WHERE prefix_key = ?').pluck(),
      countUnder: db.prepare("SELECT count(*) FROM records WHERE prefix_key = ? OR (prefix_key > ? || '.' AND prefix_key < ? || '/')").pluck(),
      lastVersion: db.prepare('SELECT max(version) FROM record_versions WHERE handle_key = ?').pluck(),
      upsertRecord: db.prepare(
        `INSERT INTO records (handle_key, handle, prefix_key, values_json, public_json, version, updated_at)
         VALUES (@handleKey, @handle, @prefixKey, @valuesJson, @publicJson, @version, @updatedAt)
         ON CONFLICT (handle_key) DO UPDATE SET handle = excluded.handle, values_json = excluded.values_json,
           public_json = excluded.public_json, version = excluded.version, updated_at = excluded.updated_at`,
      ),
      deleteRecord: db.prepare('DELETE FROM records WHERE handle_key = ?'),
      insertVersion: db.prepare(
        'INSERT INTO record_versions (handle_key, version, handle, at, actor, action, values_json, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      getPrefix: db.prepare(
        'SELECT prefix_key AS prefixKey, prefix, parent_key AS parentKey, owner_json AS ownerJson, site, status, created_at AS createdAt, updated_at AS updatedAt FROM prefixes WHERE prefix_key = ?',
      ),
      allPrefixes: db.prepare(
        'SELECT prefix_key AS prefixKey, prefix, parent_key AS parentKey, owner_json AS ownerJson, site, status, created_at AS createdAt, updated_at AS updatedAt FROM prefixes ORDER BY prefix_key',
      ),
      putPrefix: db.prepare(
        `INSERT INTO prefixes (prefix_key, prefix, parent_key, owner_json, site, status, created_at, updated_at)
         VALUES (@prefixKey, @prefix, @parentKey, @ownerJson, @site, @status, @createdAt, @updatedAt)
         ON CONFLICT (prefix_key) DO UPDATE SET owner_json = excluded.owner_json, site = excluded.site,
           status = excluded.status, updated_at = excluded.updated_at`,
      ),
      deletePrefix: db.prepare('DELETE FROM prefixes WHERE prefix_key = ?'),
      tokenByHash: db.prepare(
        'SELECT id, role, prefixes_json AS prefixesJson, secret_hash AS secretHash, label, created_at AS createdAt, revoked_at AS revokedAt FROM tokens WHERE secret_hash = ?',
      ),
      tokenById: db.prepare(
        'SELECT id, role, prefixes_json AS prefixesJson, secret_hash AS secretHash, label, created_at AS createdAt, revoked_at AS revokedAt FROM tokens WHERE id = ?',
      ),
      listTokens: db.prepare(
        'SELECT id, role, prefixes_json AS prefixesJson, secret_hash AS secretHash, label, created_at AS createdAt, revoked_at AS revokedAt FROM tokens ORDER BY created_at, id',
      ),
      activeAdminCount: db.prepare("SELECT count(*) FROM tokens WHERE role = 'admin' AND revoked_at IS NULL").pluck(),
      insertToken: db.prepare(
        'INSERT INTO tokens (id, role, prefixes_json, secret_hash, label, created_at, revoked_at) VALUES (@id, @role, @prefixesJson, @secretHash, @label, @createdAt, @revokedAt)',
      ),
      revokeToken: db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      auditHead: db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1'),
      insertAudit: db.prepare(
        'INSERT INTO audit_log (seq, at, actor, action, target, digest, prev_hash, hash) VALUES (@seq, @at, @actor, @action, @target, @digest, @prevHash, @hash)',
      ),
      recordCount: db.prepare('SELECT count(*) FROM records').pluck(),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
    };
  }

  private migrate(): void {
    const files = readdirSync(SCHEMA_DIR)
      .filter((f) => /^\d{3}_.*\.sql$/.test(f))
      .sort();
    const current = this.db.pragma('user_version', { simple: true }) as number;
    for (const file of files) {
      const version = Number(file.slice(0, 3));
      if (version <= current) continue;
      const sql = readFileSync(join(SCHEMA_DIR, file), 'utf8');
      this.db.transaction(() => {
        this.db.exec(sql);
        this.db.pragma(`user_version = ${version}`);
      }).immediate();
    }
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  getRecord(handleKey: string): RecordRow | undefined {
    return this.stmt.getRecord.get(handleKey) as RecordRow | undefined;
  }

  listRecordHandles(prefixKey: string, limit: number, offset: number): string[] {
    return this.stmt.listRecords.all(prefixKey, limit, offset) as string[];
  }

  countRecords(prefixKey: string): number {
    return this.stmt.countRecords.get(prefixKey) as number;
  }

  /** Records whose prefix is `prefixKey` or lies under it. */
  countRecordsUnder(prefixKey: string): number {
    return this.stmt.countUnder.get(prefixKey, prefixKey, prefixKey) as number;
  }

  totalRecords(): number {
    return this.stmt.recordCount.get() as number;
  }

  getPrefix(prefixKey: string): PrefixRow | undefined {
    return this.stmt.getPrefix.get(prefixKey) as PrefixRow | undefined;
  }

  allPrefixes(): PrefixRow[] {
    return this.stmt.allPrefixes.all() as PrefixRow[];
  }

  tokenByHash(hash: string): TokenRow | undefined {
    return this.stmt.tokenByHash.get(hash) as TokenRow | undefined;
  }

  tokenById(id: string): TokenRow | undefined {
    return this.stmt.tokenById.get(id) as TokenRow | undefined;
  }

  listTokens(): TokenRow[] {
    return this.stmt.listTokens.all() as TokenRow[];
  }

  activeAdminCount(): number {
    return this.stmt.activeAdminCount.get() as number;
  }

  /** Changes when another connection (CLI, another worker) commits. */
  dataVersion(): number {
    return this.stmt.dataVersion.get() as number;
  }

  /**
   * The one write path. `apply` runs inside an IMMEDIATE transaction and returns the
   * result plus the canonical text of what was written (its SHA-256 is the audit digest).
   * Must not await: the transaction is synchronous by design.
   */
  write<T>(entry: WriteEntry, apply: (tx: WriteTx) => WriteOutcome<T>): T {
    const run = this.db.transaction((): T => {
      const at = isoSeconds(this.now());
      const head = this.stmt.auditHead.get() as { seq: number; hash: string } | undefined;
      const seq = (head?.seq ?? 0) + 1;
      const prevHash = head?.hash ?? GENESIS_HASH;
      const stmt = this.stmt;
      const nextVersion = (handleKey: string) => ((stmt.lastVersion.get(handleKey) as number | null) ?? 0) + 1;
      const tx: WriteTx = {
        at,
        putRecord(row) {
          const version = nextVersion(row.handleKey);
          stmt.upsertRecord.run({ ...row, version, updatedAt: at });
          stmt.insertVersion.run(row.handleKey, version, row.handle, at, entry.actor, entry.action, row.valuesJson, seq);
          return version;
        },
        deleteRecord(handleKey, handle) {
          const version = nextVersion(handleKey);
          stmt.deleteRecord.run(handleKey);
          stmt.insertVersion.run(handleKey, version, handle, at, entry.actor, entry.action, null, seq);
          return version;
        },
        putPrefix(row) {
          stmt.putPrefix.run(row);
        },
        deletePrefix(prefixKey) {
          stmt.deletePrefix.run(prefixKey);
        },
        insertToken(row) {
          stmt.insertToken.run(row);
        },
        revokeToken(id) {
          stmt.revokeToken.run(at, id);
        },
      };
      const { result, payload, action } = apply(tx);
      if (payload === null) return result;
      const base = { seq, at, actor: entry.actor, action: action ?? entry.action, target: entry.target, digest: sha256(payload) };
      stmt.insertAudit.run({ ...base, prevHash, hash: auditHash(prevHash, base) });
      return result;
    });
    try {
      return run.immediate();
    } catch (err) {
      if (err instanceof IdnError) throw err;
      throw new IdnError('IDN_INTERNAL', 'the write could not be stored', { cause: err });
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
