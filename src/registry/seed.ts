/**
 * Seeds an empty node from seeds/: prefixes.json, records.ndjson and events.ndjson, in one
 * audited write whose kept payload starts with the record versions' lines in key order (so
 * verification checks every seeded version), then the prefixes and the events.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IdnError } from '../errors.js';
import { parentPrefix, parseIdentifier, parsePrefix } from '../identifier/index.js';
import { applyEvent, canonicalEvent, type LineageEvent, parseEvent } from '../lineage/events.js';
import type { Store } from '../store/index.js';
import { parseValuesBody } from './values.js';
import { writeRecord } from './records.js';

export interface SeedPrefix {
  prefix: string;
  owner: { name: string };
}

/** Loads the seed files and writes them when the store holds no records; returns how many records it wrote. */
export async function seedIfEmpty(deps: { store: Store }, dir: string): Promise<number> {
  const { store } = deps;
  if ((await store.totalRecords()) > 0) return 0;
  const prefixes = JSON.parse(readFileSync(join(dir, 'prefixes.json'), 'utf8')) as SeedPrefix[];
  const lines = readFileSync(join(dir, 'records.ndjson'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  const records = lines.map((line, i) => {
    try {
      const { handle, values } = JSON.parse(line) as { handle: string; values: unknown };
      const id = parseIdentifier(handle);
      return { id, values: parseValuesBody(values, { valuesMax: 2048 }) };
    } catch (err) {
      throw new IdnError('IDN_INVALID_VALUE', `${join(dir, 'records.ndjson')} line ${i + 1}: ${(err as Error).message}`);
    }
  });
  const eventsFile = join(dir, 'events.ndjson');
  const eventLines = existsSync(eventsFile)
    ? readFileSync(eventsFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
    : [];
  const events: LineageEvent[] = eventLines.map((line, i) => {
    try {
      return parseEvent(JSON.parse(line), 100_000);
    } catch (err) {
      throw new IdnError('IDN_INVALID_VALUE', `${eventsFile} line ${i + 1}: ${(err as Error).message}`);
    }
  });
  await store.write({ actor: 'seed', action: 'seed', target: dir }, async (tx) => {
    for (const p of prefixes) {
      const { key } = parsePrefix(p.prefix);
      if ((await tx.getPrefix(key)) !== undefined) continue;
      await tx.putPrefix({
        prefixKey: key,
        prefix: p.prefix,
        parentKey: parentPrefix(key)!,
        ownerJson: JSON.stringify(p.owner),
        site: null,
        status: 'active',
        createdAt: tx.at,
        updatedAt: tx.at,
      });
    }
    const written: Array<[string, number, string]> = [];
    for (const r of records) {
      const w = await writeRecord(tx, r.id, await tx.getRecord(r.id.key), { put: r.values });
      if (w.version > 0) written.push([r.id.key, w.version, w.line]);
    }
    for (const ev of events) await applyEvent(tx, ev, canonicalEvent(ev));
    written.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
    const versions = written.map((w) => w[2]).join('\n');
    return {
      result: undefined,
      // The versions stand for the record lines (stamped as stored); the prefixes and events follow as read.
      payload: `${versions}\n${prefixes.length} prefixes, ${records.length} records, ${events.length} events\n${JSON.stringify(prefixes)}\n${eventLines.join('\n')}`,
      keepPayload: true,
    };
  });
  return records.length;
}
