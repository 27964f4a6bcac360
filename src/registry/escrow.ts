/**
 * Escrow (HANDLE-NOTES: secondary nodes escrow their core data with the top-level node):
 * `export` writes a consistent snapshot as one NDJSON file per table plus a manifest
 * (row counts, SHA-256 of each file, template versions, the audit head hash); `restore`
 * checks the manifest and rebuilds a node whose answers and audit verification match.
 * Tokens and the outbox stay with the node: a restored node gets new tokens.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { IdnError } from '../errors.js';
import { type ConnectOptions, connectStore, ESCROW_TABLES, openStore, type Store } from '../store/index.js';
import { storedForm } from './answer.js';
import type { HandleValue } from './values.js';

export const MANIFEST = 'manifest.json';
/** Not a table: the records as NDJSON {"handle","values"} lines (what bulk import reads). */
const HANDLES = 'handles';

export interface Manifest {
  format: 'idnode-escrow';
  formatVersion: 1;
  schemaVersion: number;
  exportedAt: string;
  files: Record<string, { table: string; rows: number; bytes: number; sha256: string }>;
  counts: { records: number; prefixes: number; templates: number; events: number; auditEntries: number };
  templateVersions: string[];
  auditHead: { seq: number; hash: string };
}

/** Writes the snapshot into `dir` (created; must not hold an export already). */
export async function exportTo(store: Store, dir: string, now: Date = new Date()): Promise<Manifest> {
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, MANIFEST))) throw new IdnError('IDN_BAD_REQUEST', `${dir} already holds an export (${MANIFEST}); choose an empty folder`);
  const files = new Map<string, { fd: number; table: string; rows: number; bytes: number; hash: ReturnType<typeof createHash>; buf: string[] }>();
  for (const table of [...ESCROW_TABLES, HANDLES])
    files.set(table, { fd: openSync(join(dir, `${table}.ndjson`), 'w'), table, rows: 0, bytes: 0, hash: createHash('sha256'), buf: [] });
  const add = (table: string, line: string) => {
    const f = files.get(table)!;
    f.hash.update(line);
    f.bytes += Buffer.byteLength(line);
    f.rows++;
    f.buf.push(line);
    if (f.buf.length >= 1000) flush(f);
  };
  const flush = (f: { fd: number; buf: string[] }) => {
    if (f.buf.length === 0) return;
    writeSync(f.fd, f.buf.join(''));
    f.buf = [];
  };
  const templateVersions: string[] = [];
  let head = { seq: 0, hash: '' };
  try {
    await store.snapshot((table, row) => {
      add(table, `${JSON.stringify(row)}\n`);
      // The same records in the bulk format, for `idnode import` or another Handle server.
      if (table === 'records') add(HANDLES, `{"handle":${JSON.stringify(row.handle)},"values":${row.values_json as string}}\n`);
      if (table === 'templates') templateVersions.push(`${row.prefix as string}@${row.version as string}`);
      if (table === 'audit_log' && (row.seq as number) > head.seq) head = { seq: row.seq as number, hash: row.hash as string };
    });
  } finally {
    for (const f of files.values()) {
      flush(f);
      closeSync(f.fd);
    }
  }
  const rows = (t: string) => files.get(t)!.rows;
  const manifest: Manifest = {
    format: 'idnode-escrow',
    formatVersion: 1,
    schemaVersion: store.schemaVersion,
    exportedAt: now.toISOString(),
    files: Object.fromEntries(
      [...files.values()].map((f) => [`${f.table}.ndjson`, { table: f.table, rows: f.rows, bytes: f.bytes, sha256: f.hash.digest('hex') }]),
    ),
    counts: { records: rows('records'), prefixes: rows('prefixes'), templates: rows('templates'), events: rows('events'), auditEntries: rows('audit_log') },
    templateVersions,
    auditHead: head.seq === 0 ? await store.auditHead() : head,
  };
  const fd = openSync(join(dir, MANIFEST), 'w');
  writeSync(fd, `${JSON.stringify(manifest, null, 2)}\n`);
  closeSync(fd);
  return manifest;
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * A records row as the write path would store it: the escrowed values (what the audit chain
 * covers) with the public list, max-age and ETag rendered again, so a row from an export of
 * any schema version answers like a freshly written one.
 */
function withAnswerMeta(row: Record<string, unknown>): Record<string, unknown> {
  const valuesJson = row.values_json;
  if (typeof valuesJson !== 'string' || typeof row.handle !== 'string')
    throw new IdnError('IDN_BAD_REQUEST', 'records.ndjson holds a row without handle or values_json; the export is damaged');
  const form = storedForm(row.handle, JSON.parse(valuesJson) as HandleValue[]);
  return { ...row, public_json: form.publicJson, max_age: form.maxAge, expires_at: form.expiresAt, etag: form.etag };
}

/**
 * Rebuilds a database at `dbPath` (which must not exist) from an export in `dir`: checks
 * every file against the manifest first, loads the rows, then verifies the audit chain and
 * its head against the manifest. A failed restore leaves no database behind. `dbPath` may
 * instead name a PostgreSQL database (`{ engine: 'postgres', url }`), which must be empty; a
 * failed restore there leaves what it loaded (drop and create the database to try again).
 */
export async function restoreFrom(dir: string, dbPath: string | ConnectOptions): Promise<{ manifest: Manifest; checked: number }> {
  const mpath = join(dir, MANIFEST);
  if (!existsSync(mpath)) throw new IdnError('IDN_BAD_REQUEST', `no ${MANIFEST} in ${dir}; point --from at a folder written by idnode export`);
  const manifest = JSON.parse(readFileSync(mpath, 'utf8')) as Manifest;
  if (manifest.format !== 'idnode-escrow' || manifest.formatVersion !== 1)
    throw new IdnError('IDN_BAD_REQUEST', `${mpath} is not an idnode escrow manifest (format version 1)`);
  for (const [name, f] of Object.entries(manifest.files)) {
    const path = join(dir, name);
    if (!existsSync(path)) throw new IdnError('IDN_BAD_REQUEST', `${name} is listed in the manifest but missing from ${dir}`);
    if (statSync(path).size !== f.bytes || sha256File(path) !== f.sha256)
      throw new IdnError('IDN_BAD_REQUEST', `${name} does not match the manifest (size or SHA-256 differs): the export was changed or is incomplete`);
  }
  for (const table of ESCROW_TABLES)
    if (manifest.files[`${table}.ndjson`] === undefined)
      throw new IdnError('IDN_BAD_REQUEST', `the manifest lists no ${table}.ndjson; the export is incomplete`);
  if (typeof dbPath === 'string' && existsSync(dbPath)) throw new IdnError('IDN_BAD_REQUEST', `${dbPath} exists; restore into a new database file`);
  const store = typeof dbPath === 'string' ? openStore(dbPath) : await connectStore(dbPath);
  let ok = false;
  try {
    if (typeof dbPath !== 'string' && ((await store.auditHead()).seq > 0 || (await store.totalRecords()) > 0 || (await store.allPrefixes()).length > 0))
      throw new IdnError('IDN_BAD_REQUEST', `${store.path} is not empty; restore into a new database`);
    if (store.schemaVersion < manifest.schemaVersion)
      throw new IdnError('IDN_BAD_REQUEST', `the export has schema v${manifest.schemaVersion}, newer than this idnode's v${store.schemaVersion}`);
    for (const table of ESCROW_TABLES) {
      const name = `${table}.ndjson`;
      let batch: Array<Record<string, unknown>> = [];
      const lines = createInterface({ input: createReadStream(join(dir, name)), crlfDelay: Infinity });
      for await (const line of lines) {
        if (line === '') continue;
        const row = JSON.parse(line) as Record<string, unknown>;
        batch.push(table === 'records' ? withAnswerMeta(row) : row);
        if (batch.length >= 5000) {
          await store.insertRows(table, batch);
          batch = [];
        }
      }
      await store.insertRows(table, batch);
    }
    const verdict = await store.verifyAudit();
    const head = await store.auditHead();
    if (!verdict.ok)
      throw new IdnError('IDN_BAD_REQUEST', `the restored audit chain does not verify: entry ${verdict.firstBroken!.seq}: ${verdict.firstBroken!.reason}`);
    if (head.seq !== manifest.auditHead.seq || head.hash !== manifest.auditHead.hash)
      throw new IdnError(
        'IDN_BAD_REQUEST',
        `the restored audit head (${head.seq}, ${head.hash}) is not the manifest's (${manifest.auditHead.seq}, ${manifest.auditHead.hash})`,
      );
    ok = true;
    return { manifest, checked: verdict.checked };
  } finally {
    await store.close();
    if (!ok && typeof dbPath === 'string') for (const suffix of ['', '-wal', '-shm']) rmSync(`${dbPath}${suffix}`, { force: true });
  }
}
