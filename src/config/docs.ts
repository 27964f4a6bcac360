/**
 * The config schema rendered for people: `idnode --help` and README's Configuration table.
 * Run as a script (`npm run docs:config`) it rewrites the table in ./README.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_KEYS, type KeySpec } from './schema.js';

export const TABLE_BEGIN = '<!-- config:begin -->';
export const TABLE_END = '<!-- config:end -->';

const ENTRIES = Object.entries(CONFIG_KEYS) as Array<[string, KeySpec]>;
const UNITS = ['KiB', 'MiB', 'GiB', 'TiB'];

/** 268435456 → '256 MiB'; undefined unless a whole number of some unit. */
function iec(n: number): string | undefined {
  let unit = -1;
  let v = n;
  while (v >= 1024 && v % 1024 === 0 && unit < UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  return unit >= 0 ? `${v} ${UNITS[unit]}` : undefined;
}

function withIec(n: number, spec: KeySpec): string {
  const human = spec.kind === 'int' && spec.unit === 'bytes' ? iec(n) : undefined;
  return human === undefined ? String(n) : `${n} (${human})`;
}

function defaultText(spec: KeySpec): string {
  if (spec.defaultText !== undefined) return spec.defaultText;
  switch (spec.kind) {
    case 'int':
      return withIec(spec.default, spec);
    case 'bool':
      return String(spec.default);
    case 'prefixes':
      return `\`${JSON.stringify(spec.default)}\``;
    default:
      return `\`${spec.default}\``;
  }
}

/** What a value may be, as the validation in src/config.ts checks it. */
function allowedText(spec: KeySpec): string {
  switch (spec.kind) {
    case 'int': {
      const unit = spec.unit === undefined ? '' : ` ${spec.unit === 'seconds' ? 's' : spec.unit}`;
      const human = spec.unit === 'bytes' && iec(spec.max) !== undefined ? ` (${iec(spec.min) ?? spec.min} – ${iec(spec.max)})` : '';
      return `integer ${spec.min} – ${spec.max}${unit}${human}`;
    }
    case 'bool':
      return 'true or false';
    case 'enum':
      return spec.values.map((v) => `\`${v}\``).join(', ');
    case 'prefixes':
      return `list of at most ${spec.maxItems} prefixes (env: comma-separated)`;
    case 'url':
      return `http(s) URL, at most ${spec.maxLength} characters`;
    case 'string':
      return `text, at most ${spec.maxLength} characters`;
  }
}

const cell = (text: string) => text.replace(/\|/g, '\\|');

/** README's Configuration table (markdown), one row per key in declaration order. */
export function renderConfigTable(): string {
  const rows = ENTRIES.map(([key, s]) => `| \`${key}\` | \`${s.env}\` | ${cell(defaultText(s))} | ${cell(allowedText(s))} | ${cell(s.doc)} |`);
  return ['| key | env | default | allowed | description |', '|---|---|---|---|---|', ...rows].join('\n');
}

function wrap(text: string, indent: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

/** The config part of `idnode --help`: every key with its variable, default, bounds and use. */
export function renderConfigHelp(width = 100): string {
  const plain = (text: string) => text.replace(/`/g, '');
  const lines = ['Config keys (JSON file; each overridable by its environment variable):'];
  for (const [key, s] of ENTRIES) {
    lines.push(`  ${key} (${s.env}): default ${plain(defaultText(s))}; ${plain(allowedText(s))}`);
    lines.push(...wrap(plain(s.doc), '      ', width));
  }
  lines.push('  IDNODE_ADMIN_TOKEN: on start, create the first admin token with this secret.');
  return lines.join('\n');
}

/** `readme` with the text between the config markers replaced by the rendered table. */
export function replaceConfigTable(readme: string): string {
  const begin = readme.indexOf(TABLE_BEGIN);
  const end = readme.indexOf(TABLE_END);
  if (begin < 0 || end < begin) throw new Error(`README has no ${TABLE_BEGIN} … ${TABLE_END} markers to put the config table between`);
  return `${readme.slice(0, begin + TABLE_BEGIN.length)}\n${renderConfigTable()}\n${readme.slice(end)}`;
}

/** The table between the markers as README has it now (undefined without markers). */
export function readmeConfigTable(readme: string): string | undefined {
  const begin = readme.indexOf(TABLE_BEGIN);
  const end = readme.indexOf(TABLE_END);
  return begin < 0 || end < begin ? undefined : readme.slice(begin + TABLE_BEGIN.length, end).trim();
}

// `npm run docs:config [README]`: the only side effect, and only when run as a script.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = resolve(process.argv[2] ?? 'README.md');
  const before = readFileSync(file, 'utf8');
  const after = replaceConfigTable(before);
  if (after !== before) writeFileSync(file, after);
  process.stdout.write(`${file}: config table ${after === before ? 'already up to date' : 'rewritten'} (${ENTRIES.length} keys)\n`);
}
