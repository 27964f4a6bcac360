/** The pages themselves: pure functions from what was resolved to HTML (no I/O here). */
import type { HistoryAnswer } from '../../lineage/query.js';
import { type HandleValue, isPublic } from '../../registry/values.js';
import { html, raw, type Safe } from './html.js';
import { t, typeLabel, type Word } from './i18n.js';
import type { Lang } from './negotiate.js';
import { qrSvg } from './qr.js';

/** Path of an identifier's page: each part percent-encoded, so `/`, `?`, `#` in a suffix stay data. */
export function idPath(text: string): string {
  const slash = text.indexOf('/');
  if (slash < 0) return `/${encodeURIComponent(text)}`;
  return `/${encodeURIComponent(text.slice(0, slash))}/${encodeURIComponent(text.slice(slash + 1))}`;
}

/** A value that looks like an identifier (prefix of dotted segments starting with a digit, then a suffix). */
const IDENTIFIER_LIKE = /^[0-9][0-9A-Za-z_-]*(\.[0-9A-Za-z_-]+)*\/[^\s/][^\s]*$/;

export function httpUrl(s: string): string | undefined {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

export function valueText(v: HandleValue): string {
  const d = v.data;
  return d.format === 'string' && typeof d.value === 'string' ? d.value : JSON.stringify(d.value);
}

/** The first URL value with an http(s) target: the page's button and the proxy's redirect. */
export function firstUrl(values: HandleValue[]): string | undefined {
  for (const v of values)
    if (v.type.toUpperCase() === 'URL') {
      const u = httpUrl(valueText(v));
      if (u !== undefined) return u;
    }
  return undefined;
}

export interface PageContext {
  lang: Lang;
  /** Public base URL of the node (no trailing slash). */
  baseUrl: string;
  /** The logged-in auditor or admin (token id and role), if any. */
  who?: string;
  /** This page's path, where the login page returns to. */
  path?: string;
}

/** Logged in: who and a logout button (a POST, so no link can log anyone out); else a login link. */
function tools(ctx: PageContext): Safe {
  if (ctx.who !== undefined)
    return html`<form class="logout" method="post" action="/logout">
      <span id="who">${t(ctx.lang, 'loggedInAs')}${ctx.who}</span> <button type="submit">${t(ctx.lang, 'logout')}</button>
    </form>`;
  return html`<a class="login" href="/login?lang=${ctx.lang}&next=${encodeURIComponent(ctx.path ?? '/')}">${t(ctx.lang, 'login')}</a>`;
}

function layout(ctx: PageContext, title: string, body: Safe): string {
  const other: Lang = ctx.lang === 'zh' ? 'en' : 'zh';
  return html`<!doctype html>
    <html lang="${ctx.lang === 'zh' ? 'zh-CN' : 'en'}">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width,initial-scale=1" />
        <title>${title}</title>
        <link rel="stylesheet" href="/face/style.css" />
        <link rel="icon" href="/favicon.ico" type="image/svg+xml" />
      </head>
      <body>
        <header>
          <a class="home" href="/?lang=${ctx.lang}">${t(ctx.lang, 'title')}</a
          ><span class="tools"
            >${tools(ctx)} <a class="lang" href="?lang=${other}" hreflang="${other}" lang="${other === 'zh' ? 'zh-CN' : 'en'}">${t(ctx.lang, 'other')}</a></span
          >
        </header>
        <main>${body}</main>
        <footer>idnode · <a href="/docs">API</a></footer>
      </body>
    </html> `.__html;
}

function searchForm(ctx: PageContext, value = ''): Safe {
  return html`<form class="search" method="get" action="/" role="search">
    <input type="hidden" name="lang" value="${ctx.lang}" /><input
      name="id"
      value="${value}"
      aria-label="${t(ctx.lang, 'searchLabel')}"
      placeholder="${t(ctx.lang, 'searchLabel')}"
      autocapitalize="off"
      spellcheck="false"
    /><button type="submit">${t(ctx.lang, 'search')}</button>
  </form>`;
}

export function homePage(ctx: PageContext, problem?: string, value?: string): string {
  return layout(
    ctx,
    t(ctx.lang, 'title'),
    html`<h1>${t(ctx.lang, 'title')}</h1>
      ${searchForm(ctx, value)}${problem !== undefined ? html`<p class="card problem" role="alert">${problem}</p>` : ''}`,
  );
}

/** Labels for each value: the template's item names, else the dictionary, else the raw type. */
function labelOf(ctx: PageContext, v: HandleValue, items: Map<number, string>): string {
  return items.get(v.index) ?? typeLabel(ctx.lang, v.type) ?? v.type;
}

function valueCell(v: HandleValue): Safe {
  const text = valueText(v);
  const type = v.type.toUpperCase();
  if (type === 'URL') {
    const u = httpUrl(text);
    return u !== undefined ? html`<a href="${u}" rel="noopener noreferrer">${text}</a>` : html`${text}`;
  }
  if (type === 'EMAIL' && /^[^\s@]+@[^\s@]+$/.test(text)) return html`<a href="mailto:${text}">${text}</a>`;
  if (IDENTIFIER_LIKE.test(text)) return html`<a class="ref" href="${idPath(text)}">${text}</a>`;
  return html`${text}`;
}

export interface RecordView {
  handle: string;
  values: HandleValue[];
  ownerName?: string;
  prefixStatus?: string;
  /** Template item names by value index, when the record names a template this node knows. */
  items: Map<number, string>;
  foreign: boolean;
  /** Logged in: the record's history and the lineage graph. */
  history?: HistoryAnswer;
  lineage?: Safe;
  lineageTruncated?: boolean;
}

function historySection(lang: Lang, h: HistoryAnswer): Safe {
  const rows = h.versions.map(
    (v) =>
      html`<tr>
        <td>${v.version}</td>
        <td>${v.at}</td>
        <td>${v.actor}</td>
        <td>${v.action}</td>
        <td class="data">${v.values === null ? t(lang, 'deleted') : v.values.map((x) => `${x.index}:${x.type}=${valueText(x)}`).join('; ')}</td>
      </tr>`,
  );
  return html`<section class="card tech" id="history">
    <h2>${t(lang, 'history')}</h2>
    <table>
      <thead>
        <tr>
          <th>${t(lang, 'version')}</th>
          <th>${t(lang, 'when')}</th>
          <th>${t(lang, 'who')}</th>
          <th>${t(lang, 'action')}</th>
          <th>${t(lang, 'values')}</th>
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
  </section>`;
}

function lineageSection(lang: Lang, view: RecordView): Safe {
  if (view.history === undefined) return html``;
  return html`<section class="card" id="lineage">
    <h2>${t(lang, 'lineage')}</h2>
    ${view.lineage !== undefined ? html`<div class="graph">${view.lineage}</div>` : html`<p class="muted">${t(lang, 'lineageNone')}</p>`}
    ${view.lineageTruncated === true ? html`<p class="muted">${t(lang, 'truncated')}</p>` : ''}
  </section>`;
}

function privateMark(lang: Lang, v: HandleValue): Safe | string {
  return isPublic(v) ? '' : html` <span class="mark">${t(lang, 'nonPublic')}</span>`;
}

export function recordPage(ctx: PageContext, view: RecordView): string {
  const { lang } = ctx;
  const canonical = ctx.baseUrl + idPath(view.handle);
  const button = firstUrl(view.values);
  const people = view.values.filter((v) => !v.type.toUpperCase().startsWith('HS_') && v.type.toUpperCase() !== 'TEMPLATE');
  const status = view.prefixStatus as Word | undefined;
  const body = html`<h1>${t(lang, 'identifier')}</h1>
    <div class="card">
      <p class="id" id="identifier">${view.handle}</p>
      <dl>
        <dt>${t(lang, 'owner')}</dt>
        <dd id="owner">${view.ownerName ?? t(lang, 'ownerUnknown')}</dd>
        ${
          status !== undefined && status in { active: 1, pending: 1, suspended: 1 }
            ? html`<dt>${t(lang, 'status')}</dt>
                <dd>${t(lang, status)}</dd>`
            : ''
        }
        ${
          view.foreign
            ? html`<dt>${t(lang, 'node')}</dt>
                <dd>${t(lang, 'foreign')}</dd>`
            : ''
        }
      </dl>
    </div>
    ${button !== undefined ? html`<a class="button" id="open" href="${button}" rel="noopener noreferrer">${t(lang, 'open')}: ${new URL(button).host}</a>` : ''}
    <section class="card">
      <h2>${t(lang, 'values')}</h2>
      ${
        people.length === 0
          ? html`<p class="muted">${t(lang, 'noValues')}</p>`
          : html`<dl id="values">
              ${people.map(
                (v) =>
                  html`<dt>${labelOf(ctx, v, view.items)}</dt>
                    <dd data-index="${v.index}">${valueCell(v)}${privateMark(lang, v)}</dd>`,
              )}
            </dl>`
      }
    </section>
    ${lineageSection(lang, view)} ${view.history !== undefined ? historySection(lang, view.history) : ''}
    <section class="card qrbox">
      <h2>${t(lang, 'qr')}</h2>
      <a href="/qr${idPath(view.handle)}">${raw(qrSvg(canonical, t(lang, 'qrOf') + view.handle))}</a>
      <p class="muted">${canonical}</p>
    </section>
    <details class="card tech">
      <summary>${t(lang, 'technical')}</summary>
      <table>
        <thead>
          <tr>
            <th>${t(lang, 'index')}</th>
            <th>${t(lang, 'type')}</th>
            <th>${t(lang, 'timestamp')}</th>
            <th>${t(lang, 'data')}</th>
          </tr>
        </thead>
        <tbody>
          ${view.values.map(
            (v) =>
              html`<tr>
                <td>${v.index}</td>
                <td>${v.type}</td>
                <td>${v.timestamp}</td>
                <td class="data">${valueText(v)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <p><a id="json" href="/api/handles${idPath(view.handle)}" type="application/json">${t(lang, 'json')}</a></p>
    </details>
    ${searchForm(ctx)}`;
  return layout(ctx, view.handle, body);
}

export interface ErrorView {
  status: number;
  title: Word;
  /** The identifier as the client wrote it (echoed, escaped). */
  text: string;
  message: string;
  ownerName?: string;
}

export function errorPage(ctx: PageContext, view: ErrorView): string {
  const { lang } = ctx;
  const body = html`<h1>${t(lang, view.title)}</h1>
    <div class="card">
      <p class="id" id="identifier">${view.text}</p>
      ${view.status === 404 ? html`<p>${t(lang, 'notFoundText')}${view.text}</p>` : ''}
      ${view.title === 'badPath' ? html`<p>${t(lang, 'badPathText')}</p>` : ''}
      <p class="muted" id="message">${view.message}</p>
      ${
        view.ownerName !== undefined
          ? html`<dl>
              <dt>${t(lang, 'owner')}</dt>
              <dd id="owner">${view.ownerName}</dd>
            </dl>`
          : ''
      }
      ${view.status >= 500 ? html`<p>${t(lang, 'tryAgain')}</p>` : ''}
    </div>
    ${searchForm(ctx, view.text)}`;
  return layout(ctx, `${view.status} ${t(lang, view.title)}`, body);
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/**
 * An ISO time as a person reads it, in UTC (the time the node recorded; no client clock or
 * zone is known without script): 2026年11月30日 05:03 UTC, or 30 November 2026, 05:03 UTC.
 */
export function readableTime(lang: Lang, iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const hm = `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')} UTC`;
  return lang === 'zh'
    ? `${d.getUTCFullYear()}年${d.getUTCMonth() + 1}月${d.getUTCDate()}日 ${hm}`
    : `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]!} ${d.getUTCFullYear()}, ${hm}`;
}

export interface TombstoneView {
  /** The identifier as it was spelled. */
  handle: string;
  /** When it was deleted (ISO). */
  at: string;
  /** Who deleted it: only for a logged-in auditor or admin. */
  actor?: string;
  ownerName?: string;
}

/** The page of a deleted identifier (HTTP 410): when it went, and who for an auditor. */
export function tombstonePage(ctx: PageContext, view: TombstoneView): string {
  const { lang } = ctx;
  const body = html`<h1>${t(lang, 'deletedTitle')}</h1>
    <div class="card" id="tombstone">
      <p class="id" id="identifier">${view.handle}</p>
      <p>${t(lang, 'deletedText')}</p>
      <dl>
        <dt>${t(lang, 'deletedAt')}</dt>
        <dd><time id="deleted-at" datetime="${view.at}">${readableTime(lang, view.at)}</time></dd>
        ${
          view.actor !== undefined
            ? html`<dt>${t(lang, 'deletedBy')}</dt>
                <dd id="deleted-by">${view.actor}</dd>`
            : ''
        }
        ${
          view.ownerName !== undefined
            ? html`<dt>${t(lang, 'owner')}</dt>
                <dd id="owner">${view.ownerName}</dd>`
            : ''
        }
      </dl>
    </div>
    ${searchForm(ctx)}`;
  return layout(ctx, `410 ${t(lang, 'deletedTitle')}`, body);
}

export function loginPage(ctx: PageContext, next: string, failed: boolean): string {
  const { lang } = ctx;
  const body = html`<h1>${t(lang, 'login')}</h1>
    <form class="card login" method="post" action="/login">
      <p class="muted">${t(lang, 'loginHelp')}</p>
      ${failed ? html`<p class="problem" role="alert" id="login-failed">${t(lang, 'loginFailed')}</p>` : ''}
      <label for="token">${t(lang, 'token')}</label><input id="token" name="token" type="password" autocomplete="off" required />
      <input type="hidden" name="next" value="${next}" /><input type="hidden" name="lang" value="${lang}" /><button type="submit">${t(lang, 'login')}</button>
    </form>`;
  return layout(ctx, t(lang, 'login'), body);
}

export function labelsPage(ctx: PageContext, handles: string[]): string {
  const { lang } = ctx;
  const body = html`<h1 class="noprint">${t(lang, 'labels')} (${handles.length})</h1>
    <div class="labels">
      ${handles.map(
        (h) =>
          html`<figure class="label">
            ${raw(qrSvg(ctx.baseUrl + idPath(h), h))}
            <p>${h}</p>
          </figure>`,
      )}
    </div>`;
  return layout(ctx, t(lang, 'labels'), body);
}

export const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0b57d0"/><path fill="#fff" d="M4 4h3v3H4zM9 4h3v3H9zM4 9h3v3H4zM9 9h1v1H9zm2 1h1v2h-2v-1h1z"/></svg>`;
