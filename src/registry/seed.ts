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
import { loneSurrogateMessage, loneSurrogatePath } from './text.js';

export interface SeedPrefix {
  prefix: string;
  owner: { name: string };
}

/** A seed file as strict UTF-8 (a bad byte is refused, not replaced). */
function readUtf8(file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(file));
  } catch (err) {
    if (err instanceof TypeError) throw new IdnError('IDN_INVALID_VALUE', `${file} is not valid UTF-8; save it as UTF-8`);
    throw err;
  }
}

/** JSON text of a seed file, refusing lone surrogates (`\ud800` escapes) before anything is hashed into the log. */
function parseSeedJson(text: string, where: string): unknown {
  const value = JSON.parse(text) as unknown;
  const at = loneSurrogatePath(value);
  if (at !== undefined) throw new IdnError('IDN_INVALID_VALUE', loneSurrogateMessage(where, at));
  return value;
}

/** Loads the seed files and writes them when the store holds no records; returns how many records it wrote. */
export async function seedIfEmpty(deps: { store: Store }, dir: string): Promise<number> {
  const { store } = deps;
  // One key is enough to know: a count would scan a whole index of a large SQLite store at every start.
  if ((await store.recordKeysAfter('', 1)).length > 0) return 0;
  const prefixesFile = join(dir, 'prefixes.json');
  const prefixes = parseSeedJson(readUtf8(prefixesFile), prefixesFile) as SeedPrefix[];
  const lines = readUtf8(join(dir, 'records.ndjson'))
    .split('\n')
    .filter((l) => l.trim() !== '');
  const records = lines.map((line, i) => {
    try {
      const { handle, values } = parseSeedJson(line, 'the line') as { handle: string; values: unknown };
      const id = parseIdentifier(handle);
      return { id, values: parseValuesBody(values, { valuesMax: 2048 }) };
    } catch (err) {
      throw new IdnError('IDN_INVALID_VALUE', `${join(dir, 'records.ndjson')} line ${i + 1}: ${(err as Error).message}`);
    }
  });
  const eventsFile = join(dir, 'events.ndjson');
  const eventLines = existsSync(eventsFile)
    ? readUtf8(eventsFile)
        .split('\n')
        .filter((l) => l.trim() !== '')
    : [];
  const events: LineageEvent[] = eventLines.map((line, i) => {
    try {
      return parseEvent(parseSeedJson(line, 'the line'), 100_000);
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
