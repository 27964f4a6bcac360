/** Content negotiation for the short URL: HTML for browsers, the JSON answer for everyone else. */

export type Lang = 'zh' | 'en';

interface Range {
  type: string;
  q: number;
}

function ranges(header: string): Range[] {
  const out: Range[] = [];
  for (const item of header.split(',')) {
    const [type, ...params] = item.split(';');
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m !== null) q = Number(m[1]);
    }
    if (!Number.isFinite(q)) q = 0;
    out.push({ type: type!.trim().toLowerCase(), q });
  }
  return out;
}

/**
 * True when the client lists text/html with a q at least that of any JSON type. No Accept,
 * `*∕*` alone or application/json → false: machine clients keep getting JSON.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined || !accept.includes('html')) return false;
  let htmlQ = 0;
  let jsonQ = 0;
  for (const r of ranges(accept)) {
    if (r.type === 'text/html') htmlQ = Math.max(htmlQ, r.q);
    else if (r.type === 'application/json' || r.type.endsWith('+json')) jsonQ = Math.max(jsonQ, r.q);
  }
  return htmlQ > 0 && htmlQ >= jsonQ;
}

/** `?lang=` wins; then the first of zh/en in Accept-Language by q; Chinese by default. */
export function pickLang(query: unknown, acceptLanguage: string | undefined): Lang {
  if (query === 'zh' || query === 'en') return query;
  if (acceptLanguage === undefined) return 'zh';
  let best: Lang = 'zh';
  let bestQ = 0;
  for (const r of ranges(acceptLanguage)) {
    const lang = r.type.startsWith('zh') ? 'zh' : r.type.startsWith('en') ? 'en' : undefined;
    if (lang !== undefined && r.q > bestQ) {
      best = lang;
      bestQ = r.q;
    }
  }
  return best;
}
