/**
 * Verification of the audit chain, engine-independent: it reads through AuditVerifyReads only.
 *
 * 1. The chain: seq contiguous from 1, each prev_hash the previous hash, each hash recomputed
 *    (it covers the rows digest of v8 entries), each kept payload matching its digest, each
 *    record version an entry wrote matching its digest (all the check entries before v8 have),
 *    and each write set matching its rows digest.
 * 2. The tables: replaying the write sets from the first entry that has one (v8, or the
 *    migration's re-base) gives the expected hash of every row of every audited table; each
 *    table is read in key order and must hold exactly those rows (no row inserted, deleted or
 *    altered, in any column).
 *
 * It yields to the event loop every `sliceEntries` entries or rows, so a node keeps answering
 * while it runs, and reports its progress.
 */
import { performance } from 'node:perf_hooks';
import { AUDITED, AUDITED_TABLES, type AuditedTableName, auditHash, GENESIS_HASH, parseWriteSet, rowHash, rowKey, sha256, versionLine } from './chain.js';
import type { AuditEntryFull, AuditVerdict, AuditVerifyReads, EntryVersion, VerifyOptions, VerifyProgress } from './types.js';

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Work between two yields also stops after this long, whatever the slice (a busy machine is slow). */
const SLICE_MS = 10;

/**
 * Whether the record versions an entry wrote match its digest, whatever its action: a record
 * write's digest is its one version line; a bulk chunk's, its versions' lines in key order; any
 * other entry that wrote versions (seeding) keeps its payload, which starts with those lines.
 */
function versionProblem(row: AuditEntryFull, versions: EntryVersion[]): string | undefined {
  if (row.action.startsWith('record.')) {
    if (versions.length !== 1 || sha256(versionLine(versions[0]!.handle, versions[0]!.valuesJson)) !== row.digest)
      return 'the record version this entry wrote does not match its digest (record_versions was edited)';
    return undefined;
  }
  versions.sort((a, b) => (a.handleKey < b.handleKey ? -1 : a.handleKey > b.handleKey ? 1 : a.version - b.version));
  const lines = versions.map((v) => versionLine(v.handle, v.valuesJson)).join('\n');
  if (row.action === 'bulk.chunk') {
    if (sha256(lines) !== row.digest) return 'the record versions this bulk chunk wrote do not match its digest (record_versions was edited)';
    return undefined;
  }
  if (versions.length === 0) return undefined;
  // Seeds written before schema v6 kept no payload: their versions cannot be checked.
  if (row.payload === null) return row.action === 'seed' ? undefined : `this ${row.action} entry wrote record versions its digest does not cover`;
  // Compared line by line: a newline slipped into a version cannot shift it into the rest.
  if (row.payload.split('\n', 2 * versions.length).join('\n') !== lines)
    return `the record versions this ${row.action} entry wrote do not match its payload (record_versions was edited)`;
  return undefined;
}

/** What the replayed write sets say a row must be: its hash (null: absent) and who wrote it last. */
interface Expected {
  hash: string | null;
  seq: number;
}

export async function verifyChain(reads: AuditVerifyReads, opts: VerifyOptions = {}): Promise<AuditVerdict> {
  const slice = Math.max(1, opts.sliceEntries ?? 500);
  const total = (await reads.auditHead()).seq;
  const progress: VerifyProgress = { phase: 'chain', checked: 0, total, rows: 0 };
  const report = () => opts.onProgress?.({ ...progress });
  report();
  // Per table: key (JSON array text) -> expected state.
  const expected = new Map<string, Map<string, Expected>>(AUDITED_TABLES.map((t) => [t.name, new Map()]));
  let covered = 0; // the first seq with a write set (0: none yet)
  let prevHash = GENESIS_HASH;
  let next = 1;
  let sinceYield = 0;
  let sliceStart = performance.now();

  for (;;) {
    const rows = await reads.auditEntries(next - 1, slice);
    for (const row of rows) {
      const broken = (reason: string): AuditVerdict => ({ ok: false, checked: next - 1, firstBroken: { seq: row.seq, reason } });
      if (row.seq !== next)
        return { ok: false, checked: next - 1, firstBroken: { seq: next, reason: `entry ${next} is missing (deleted); the next entry is ${row.seq}` } };
      if (row.prevHash !== prevHash) return broken("prev_hash is not the previous entry's hash (an entry before it was removed, inserted or rewritten)");
      if (auditHash(prevHash, row) !== row.hash)
        return broken('hash does not match the entry (seq, at, actor, action, target, digest or rows digest was edited)');
      if (row.payload !== null && sha256(row.payload) !== row.digest) return broken('the stored payload does not match the digest (the payload was edited)');
      const problem = versionProblem(row, await reads.entryVersions(row.seq));
      if (problem !== undefined) return broken(problem);
      const hasSet = row.rowsDigest !== undefined && row.rowsDigest !== null;
      if (!hasSet && covered > 0) return broken(`entry ${covered} began write sets, but this later entry has none (its rows digest was removed)`);
      if (hasSet) {
        if (row.writeSet === null || sha256(row.writeSet) !== row.rowsDigest)
          return broken("the stored write set does not match the entry's rows digest (the write set was edited or removed)");
        const set = parseWriteSet(row.writeSet);
        if (set === undefined) return broken('the stored write set is not one (it was edited)');
        if (covered === 0) covered = row.seq;
        for (const r of set) expected.get(r.table)!.set(r.key, { hash: r.hash, seq: row.seq });
      }
      prevHash = row.hash;
      next++;
      progress.checked = row.seq;
      if (++sinceYield >= slice || performance.now() - sliceStart >= SLICE_MS) {
        sinceYield = 0;
        report();
        await yieldToLoop();
        sliceStart = performance.now();
      }
    }
    if (rows.length < slice) break;
  }
  const checked = next - 1;
  // A log without write sets (empty, or history off) proves nothing about the tables.
  if (covered === 0) return { ok: true, checked };

  progress.phase = 'tables';
  report();
  const restoredThrough = await reads.restoredThrough();
  const skip = new Set<string>(opts.skipTables ?? []);
  for (const table of AUDITED_TABLES) {
    if (skip.has(table.name)) continue;
    const want = expected.get(table.name)!;
    let after: unknown[] | null = null;
    for (;;) {
      const page = await reads.tablePage(table.name, after, slice);
      for (const row of page) {
        const key = rowKey(table, row);
        const exp = want.get(key);
        const where = { table: table.name, key };
        if (exp === undefined || exp.hash === null) {
          const named = table.seqColumn === undefined ? undefined : row[table.columns.indexOf(table.seqColumn)];
          const seq = typeof named === 'number' && named > 0 ? named : (exp?.seq ?? checked);
          const why = exp === undefined ? 'no entry in the log wrote it' : `entry ${exp.seq} removed it`;
          return { ok: false, checked, firstBroken: { seq, reason: `${table.name} row ${key} is not in the log (${why}): it was inserted`, ...where } };
        }
        if (rowHash(row) !== exp.hash)
          return {
            ok: false,
            checked,
            firstBroken: { seq: exp.seq, reason: `${table.name} row ${key} differs from what entry ${exp.seq} wrote: it was altered`, ...where },
          };
        want.delete(key);
      }
      progress.rows += page.length;
      report();
      await yieldToLoop();
      if (page.length < slice) break;
      after = page[page.length - 1]!.slice(0, table.keyColumns);
    }
    for (const [key, exp] of want) {
      if (exp.hash === null) continue;
      // A restore carries no tokens: those the restored log wrote may be gone, not later ones.
      if (table.name === 'tokens' && exp.seq <= restoredThrough) continue;
      return {
        ok: false,
        checked,
        firstBroken: { seq: exp.seq, reason: `${table.name} row ${key} that entry ${exp.seq} wrote is missing: it was deleted`, table: table.name, key },
      };
    }
  }
  return { ok: true, checked };
}

/** Whether `name` is an audited table (for engines building their reads from AUDITED_TABLES). */
export const isAuditedTable = (name: string): name is AuditedTableName => AUDITED.has(name);
