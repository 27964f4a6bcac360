/** The change feed: one row per cached thing a write made stale, pruned to a bounded length. */
import type { ChangeReads, ChangeRow } from '../types.js';
import type { Db, Sync } from './db.js';

export function changeReads(db: Db): Sync<ChangeReads> {
  const dataVersion = db.prepare('PRAGMA data_version').pluck();
  const after = db.prepare('SELECT id, audit_seq AS auditSeq, kind, key FROM changes WHERE id > ? ORDER BY id LIMIT ?');
  const head = db.prepare('SELECT max(id) FROM changes').pluck();
  return {
    dataVersion: () => dataVersion.get() as number,
    changesAfter: (cursor, limit) => after.all(cursor, limit) as ChangeRow[],
    changesHead: () => (head.get() as number | null) ?? 0,
  };
}

export function changeWrites(db: Db, retention: number) {
  // One statement per write: a bulk chunk names a thousand records.
  const insert = db.prepare(
    `INSERT INTO changes (audit_seq, kind, key)
     SELECT ?, substr(value, 1, instr(value, ' ') - 1), substr(value, instr(value, ' ') + 1) FROM json_each(?) ORDER BY key`,
  );
  const lastId = db.prepare('SELECT last_insert_rowid()').pluck();
  const prune = db.prepare('DELETE FROM changes WHERE id <= ?');
  return {
    /** Records `changes` ("kind key" strings) under `auditSeq`, then prunes past the retention. */
    record(auditSeq: number | null, changes: Iterable<string>): void {
      const list = [...changes];
      if (list.length === 0) return;
      insert.run(auditSeq, JSON.stringify(list));
      const last = Number(lastId.get());
      // Bounded: a follower further behind than this drops its whole cache instead.
      if (last > retention) prune.run(last - retention);
    },
  };
}
