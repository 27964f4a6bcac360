/**
 * The baseline: a bare node:http server that answers every request with one fixed JSON body
 * of BARE_BODY_BYTES bytes and the same headers idnode sends on a cache hit (same names, order
 * and lengths). Prints its URL.
 */
import Database from 'better-sqlite3';
import { createServer } from 'node:http';
import postgres from 'postgres';

const size = Number(process.env.BARE_BODY_BYTES ?? '600');
const prefix = '{"responseCode":1,"handle":"88.100.1/X","values":[{"data":"';
const body = Buffer.from(`${prefix}${'x'.repeat(Math.max(0, size - prefix.length - 4))}"}]}`);
// idnode's hit headers, in its order and with values of the same length (a 27-character
// ETag, "idnode; hit"), so both servers send the same number of header bytes.
const headers = [
  'content-type',
  'application/json; charset=utf-8',
  'content-length',
  String(body.length),
  'cache-status',
  'idnode; hit',
  'x-content-type-options',
  'nosniff',
  'access-control-allow-origin',
  '*',
  'etag',
  `"${'b'.repeat(27)}"`,
  'cache-control',
  'max-age=86400',
];

// BARE_MODE=ndjson: read an NDJSON upload and answer one result line per input line (the
// bulk registration baseline: same bytes in, same shape out, no parsing, no storage).
const ndjson = process.env.BARE_MODE === 'ndjson';
// BARE_DB=<fixture>: also look the path's identifier up in that SQLite file (the same point
// query and pragmas idnode uses) before answering: the floor for any server that reads its
// store on a cache miss.
const lookup = process.env.BARE_DB
  ? (() => {
      const db = new Database(process.env.BARE_DB, { readonly: true });
      db.pragma('cache_size = -65536');
      db.pragma(`mmap_size = ${64 * 1024 ** 3}`);
      return db.prepare('SELECT handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE handle_key = ?').raw();
    })()
  : undefined;
// BARE_PG=<url>: the same point query on PostgreSQL instead (postgres.js, BARE_PG_CONNECTIONS
// pipelined connections, idnode's store.connections default): the floor for a node on PostgreSQL.
const pg = process.env.BARE_PG ? postgres(process.env.BARE_PG, { max: Number(process.env.BARE_PG_CONNECTIONS ?? '2'), onnotice: () => {} }) : undefined;
const server = createServer((req, res) => {
  if (pg !== undefined) {
    const key = req.url!.slice('/api/handles/'.length).toLowerCase();
    pg`SELECT handle, values_json, public_json, max_age, expires_at, etag FROM records WHERE handle_key = ${key}`.values().then(
      (rows) => {
        if (rows.length === 0) res.writeHead(404).end();
        else res.writeHead(200, headers).end(body);
      },
      () => res.writeHead(500).end(),
    );
    return;
  }
  if (!ndjson) {
    if (lookup !== undefined && lookup.get(req.url!.slice('/api/handles/'.length).toLowerCase()) === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, headers);
    res.end(body);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  let line = 0;
  req.on('data', (chunk: Buffer) => {
    const out: string[] = [];
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) out.push(`{"line":${++line},"responseCode":1}\n`);
    if (out.length > 0 && !res.write(out.join(''))) {
      req.pause();
      res.once('drain', () => req.resume());
    }
  });
  req.on('end', () => res.end(`{"summary":true,"total":${line},"ok":${line},"failed":0,"committedThroughLine":${line}}\n`));
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  if (typeof addr === 'object' && addr !== null) process.stdout.write(`bare listening on http://127.0.0.1:${addr.port} (body ${body.length} bytes)\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
