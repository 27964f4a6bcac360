/**
 * An escaping tagged template: every interpolated value is HTML-escaped unless it is itself
 * the result of `html` (or `raw`), so a page is built from trusted markup and escaped data.
 */
export interface Safe {
  readonly __html: string;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function isSafe(v: unknown): v is Safe {
  return typeof v === 'object' && v !== null && typeof (v as Safe).__html === 'string';
}

function part(v: unknown): string {
  if (v === undefined || v === null || v === false) return '';
  if (isSafe(v)) return v.__html;
  if (Array.isArray(v)) return v.map(part).join('');
  return escapeHtml(typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Safe {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return { __html: out };
}

/** Markup produced by our own code (an SVG we drew); never pass request data here. */
export function raw(text: string): Safe {
  return { __html: text };
}
