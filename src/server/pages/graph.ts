/**
 * The lineage graph as server-rendered SVG: columns by depth, ancestors left of the root and
 * descendants right, each column ordered by its neighbours' average position, wide columns
 * folded ("and N more"), foreign identifiers dashed, every box a link to its page but those
 * outside a scoped reader's prefixes (grey, "not in your scope", no identifier, no link).
 */
import type { LineageAnswer } from '../../lineage/query.js';
import { html, type Safe } from './html.js';
import type { Lang } from './negotiate.js';
import { idPath } from './render.js';

const COL_W = 250;
const BOX_W = 220;
const BOX_H = 34;
const ROW_H = 46;
const PAD = 8;
/** More boxes than this in one column are folded into one "and N more" box. */
export const FOLD_AT = 8;

interface Box {
  handle: string;
  col: number;
  row: number;
  foreign: boolean;
  /** Outside the reader's scope: drawn without identifier or link. */
  opaque?: boolean;
  more?: number;
}

function shortText(s: string): string {
  return s.length > 30 ? `${s.slice(0, 29)}…` : s;
}

/** A key for an opaque node of one answer: its id is stable only within that answer. */
const opaqueKey = (side: string, id: string) => `\u0000${side}\u0000${id}`;

export function lineageSvg(root: string, up: LineageAnswer, down: LineageAnswer, lang: Lang): Safe | undefined {
  const col = new Map<string, number>([[root, 0]]);
  const foreign = new Map<string, boolean>();
  const opaque = new Set<string>();
  const edges: Array<{ from: string; to: string; type: string }> = [];
  const seen = new Set<string>();
  for (const [answer, sign, side] of [
    [down, 1, 'down'],
    [up, -1, 'up'],
  ] as const) {
    const ids = new Set<string>();
    for (const n of answer.nodes) {
      const key = 'opaque' in n ? opaqueKey(side, n.id) : n.handle;
      if ('opaque' in n) {
        ids.add(n.id);
        opaque.add(key);
      } else foreign.set(key, n.location === 'foreign');
      if (!col.has(key)) col.set(key, sign * n.depth);
    }
    const keyOf = (name: string) => (ids.has(name) ? opaqueKey(side, name) : name);
    for (const e of answer.edges) {
      const edge = { from: keyOf(e.from), to: keyOf(e.to), type: 'type' in e ? e.type : '' };
      const k = `${edge.from}\n${edge.to}\n${edge.type}`;
      if (!seen.has(k)) {
        seen.add(k);
        edges.push(edge);
      }
    }
  }
  if (col.size === 1) return undefined;
  const neighbours = new Map<string, string[]>();
  for (const e of edges) {
    neighbours.set(e.from, [...(neighbours.get(e.from) ?? []), e.to]);
    neighbours.set(e.to, [...(neighbours.get(e.to) ?? []), e.from]);
  }
  const cols = new Map<number, string[]>();
  for (const [h, c] of col) cols.set(c, [...(cols.get(c) ?? []), h]);
  const min = Math.min(...cols.keys());
  const max = Math.max(...cols.keys());
  const rowOf = new Map<string, number>([[root, 0]]);
  const boxes: Box[] = [{ handle: root, col: 0, row: 0, foreign: false }];
  // Outwards from the root: each column is ordered by where its neighbours sit in the one before.
  for (const order of [Array.from({ length: max }, (_, i) => i + 1), Array.from({ length: -min }, (_, i) => -(i + 1))])
    for (const c of order) {
      const members = cols.get(c) ?? [];
      const centre = (h: string) => {
        const rows = (neighbours.get(h) ?? []).map((n) => rowOf.get(n)).filter((r): r is number => r !== undefined);
        return rows.length === 0 ? Infinity : rows.reduce((a, b) => a + b, 0) / rows.length;
      };
      members.sort((a, b) => centre(a) - centre(b) || a.localeCompare(b));
      const shown = members.length > FOLD_AT ? members.slice(0, FOLD_AT - 1) : members;
      shown.forEach((h, row) => {
        rowOf.set(h, row);
        boxes.push({ handle: h, col: c, row, foreign: foreign.get(h) ?? false, ...(opaque.has(h) ? { opaque: true } : {}) });
      });
      if (shown.length < members.length) boxes.push({ handle: '', col: c, row: shown.length, foreign: false, more: members.length - shown.length });
    }
  const rows = Math.max(...boxes.map((b) => b.row)) + 1;
  const width = (max - min) * COL_W + BOX_W + 2 * PAD;
  const height = rows * ROW_H + 2 * PAD;
  const x = (c: number) => PAD + (c - min) * COL_W;
  const y = (r: number) => PAD + r * ROW_H;
  const lines = edges.flatMap((e) => {
    const a = col.get(e.from);
    const b = col.get(e.to);
    const ra = rowOf.get(e.from);
    const rb = rowOf.get(e.to);
    if (a === undefined || b === undefined || ra === undefined || rb === undefined || a === b) return [];
    const [l, r, rl, rr] = a < b ? [a, b, ra, rb] : [b, a, rb, ra];
    const x1 = x(l) + BOX_W;
    const x2 = x(r);
    const y1 = y(rl) + BOX_H / 2;
    const y2 = y(rr) + BOX_H / 2;
    return [
      html`<path d="M${x1} ${y1}C${(x1 + x2) / 2} ${y1} ${(x1 + x2) / 2} ${y2} ${x2} ${y2}" fill="none" stroke="#8a8f98"><title>${e.type}</title></path>`,
    ];
  });
  const more = lang === 'zh' ? (n: number) => `另有 ${n} 个` : (n: number) => `and ${n} more`;
  const other = lang === 'zh' ? '（其他节点）' : ' (another node)';
  const hidden = lang === 'zh' ? '不在您的范围内' : 'not in your scope';
  const items = boxes.map((b) =>
    b.opaque === true
      ? html`<g class="node opaque"
          ><title>${hidden}</title
          ><rect x="${x(b.col)}" y="${y(b.row)}" width="${BOX_W}" height="${BOX_H}" rx="6" fill="#f3f4f6" stroke="#9aa0a6" stroke-dasharray="2 3" /><text
            x="${x(b.col) + 10}"
            y="${y(b.row) + 22}"
            font-size="13"
            fill="#5f6368"
            >${hidden}</text
          ></g
        >`
      : b.more !== undefined
        ? html`<g class="more"
            ><rect x="${x(b.col)}" y="${y(b.row)}" width="${BOX_W}" height="${BOX_H}" rx="6" fill="#eef0f3" stroke="#c4c7cc" /><text
              x="${x(b.col) + 10}"
              y="${y(b.row) + 22}"
              font-size="13"
              fill="#444"
              >${more(b.more)}</text
            ></g
          >`
        : html`<a href="${idPath(b.handle)}" class="node" data-handle="${b.handle}"
            ><title>${b.handle}${b.foreign ? other : ''}</title
            ><rect
              x="${x(b.col)}"
              y="${y(b.row)}"
              width="${BOX_W}"
              height="${BOX_H}"
              rx="6"
              fill="${b.handle === root ? '#0b57d0' : '#fff'}"
              stroke="${b.foreign ? '#b06000' : '#0b57d0'}"
              ${b.foreign ? html` stroke-dasharray="5 3"` : ''}
            /><text x="${x(b.col) + 10}" y="${y(b.row) + 22}" font-size="13" fill="${b.handle === root ? '#fff' : '#1a1a1a'}"
              >${shortText(b.handle)}${b.foreign ? ' ↗' : ''}</text
            ></a
          >`,
  );
  return html`<svg
    xmlns="http://www.w3.org/2000/svg"
    class="lineage"
    width="${width}"
    height="${height}"
    viewBox="0 0 ${width} ${height}"
    role="img"
    aria-label="${lang === 'zh' ? '追溯关系图' : 'Lineage graph'}"
  >
    ${lines}${items}
  </svg>`;
}
