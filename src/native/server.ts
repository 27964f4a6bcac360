/**
 * The native Handle protocol listeners: HDL-TCP and HDL-UDP on one port. Resolutions go
 * through the same resolver as HTTP (cache → store → upstream); the cached JSON answer's
 * values are encoded once per entry and kept beside it in a WeakMap, so an entry the
 * resolver drops takes its native form with it.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { IdnError, isIdnError } from '../errors.js';
import { foldCase, parseIdentifier } from '../identifier/index.js';
import { type Entry, entryAnswer, type Resolver } from '../resolver/index.js';
import {
  CodecError,
  decodeEnvelope,
  decodeHeader,
  decodeRequest,
  ENV_FLAG,
  ENVELOPE_SIZE,
  HEADER_SIZE,
  encodeEnvelope,
  encodeResponse,
  encodeSite,
  encodeValue,
  errorBody,
  MSG_FLAG,
  OC,
  PERM,
  permissionBits,
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  RC,
  type Request,
  u32,
  UDP_DATA_SIZE,
  udpDatagrams,
} from './codec.js';

export type Transport = 'udp' | 'tcp';

export interface NativeOptions {
  host: string;
  port: number;
  maxInFlight: number;
  maxMessageBytes: number;
  idleTimeoutMs: number;
  udpMaxResponseBytes: number;
}

export interface NativeDeps {
  resolver: Resolver;
  options: NativeOptions;
  /** The node's HTTP base URL, named in the site record (known once HTTP listens). */
  httpBaseUrl: () => string;
  /** Each answered request (responseCode), or a dropped one ('dropped'); ms and source for resolutions. */
  onRequest?: (transport: Transport, responseCode: number | 'dropped', ms?: number, source?: 'cache' | 'store' | 'upstream') => void;
  logError?: (err: unknown, message: string) => void;
}

export interface NativeServer {
  listen(): Promise<number>;
  /** The bound port (after listen). */
  port(): number;
  close(): Promise<void>;
  /** Requests past the cache being answered now. */
  inFlight(): number;
}

const SITE_SERIAL = 1;
const utf8 = new TextDecoder('utf-8', { fatal: true });

interface Prepared {
  values: { index: number; type: string; bytes: Buffer }[];
  /** Count and every value, for an unfiltered answer. */
  all: Buffer;
}

/** Values without public read are never sent; answers of this node's public view have none, relayed ones are checked too. */
function prepare(entry: Entry): Prepared {
  const { values } = entryAnswer(entry);
  const list = values
    .filter((v) => (permissionBits(v.permissions) & PERM.PUBLIC_READ) !== 0)
    .map((v) => ({ index: v.index, type: foldCase(v.type), bytes: encodeValue(v) }));
  return { values: list, all: Buffer.concat([u32(list.length), ...list.map((v) => v.bytes)]) };
}

/** Handle.Net's type filter: exact (ASCII case-insensitive), or `a.` matching `a` and `a.*`. */
function typeMatches(type: string, wanted: string[]): boolean {
  for (const f of wanted) {
    if (type === f) return true;
    if (f.endsWith('.') && (type.startsWith(f) || type === f.slice(0, -1))) return true;
  }
  return false;
}

export function createNativeServer(deps: NativeDeps): NativeServer {
  const opts = deps.options;
  const prepared = new WeakMap<Entry, Prepared>();
  let inFlight = 0;
  let boundPort = 0;
  const note = deps.onRequest ?? (() => {});

  function respond(req: Request, responseCode: number, body: Buffer[], opCode = req.opCode): Buffer {
    // The envelope's bytes are left free at the front: the transport writes it in place.
    return encodeResponse(
      { opCode, responseCode, requestFlags: req.opFlags, siteInfoSerial: SITE_SERIAL, expiration: req.expiration, digestOf: req.raw, body },
      ENVELOPE_SIZE,
    );
  }

  function fromEntry(req: Request, handle: Buffer, entry: Entry): Buffer {
    if (entry.status !== 200) {
      let rc: number = RC.ERROR;
      let message = 'error';
      try {
        const b = JSON.parse(entry.body) as { responseCode?: number; message?: string };
        rc = b.responseCode ?? rc;
        message = b.message ?? message;
      } catch {
        // an entry's body is JSON written by this node or checked upstream; keep the generic error
      }
      return respond(req, rc, errorBody(message));
    }
    let p = prepared.get(entry);
    if (p === undefined) {
      p = prepare(entry);
      prepared.set(entry, p);
    }
    if (req.indexes.length === 0 && req.types.length === 0) return respond(req, RC.SUCCESS, [u32(handle.length), handle, p.all]);
    const indexes = new Set(req.indexes);
    const types = req.types.map((t) => foldCase(t.toString('utf8')));
    const chosen = p.values.filter((v) => indexes.has(v.index) || typeMatches(v.type, types));
    if (chosen.length === 0) return respond(req, RC.VALUES_NOT_FOUND, errorBody('no value of this identifier matches the requested indexes or types'));
    return respond(req, RC.SUCCESS, [u32(handle.length), handle, u32(chosen.length), ...chosen.map((v) => v.bytes)]);
  }

  function failure(req: Request, err: unknown): Buffer {
    const idn = isIdnError(err) ? err : new IdnError('IDN_INTERNAL', 'the answer could not be built', { cause: err });
    if (!isIdnError(err)) deps.logError?.(err, idn.message);
    return respond(req, idn.responseCode, errorBody(idn.message));
  }

  function siteInfo(req: Request): Buffer {
    const ifs = [
      { query: true, admin: false, protocol: 'TCP' as const, port: boundPort },
      { query: true, admin: false, protocol: 'UDP' as const, port: boundPort },
    ];
    const site = encodeSite({
      serialNumber: SITE_SERIAL,
      primarySite: true,
      multiPrimary: false,
      attributes: [
        { name: 'desc', value: 'idnode' },
        { name: 'http', value: deps.httpBaseUrl() },
      ],
      servers: [{ serverId: 1, address: opts.host, interfaces: ifs }],
    });
    return respond(req, RC.SUCCESS, [site]);
  }

  /**
   * Answers one message (header + body) with a framed answer (ENVELOPE_SIZE free bytes, then
   * header and body); undefined drops it. A cache hit is answered synchronously.
   */
  function answer(msg: Buffer, transport: Transport): Buffer | Promise<Buffer> | undefined {
    const t0 = performance.now();
    let req: Request;
    try {
      req = decodeRequest(msg);
    } catch (err) {
      let h;
      try {
        h = decodeHeader(msg);
      } catch {
        note(transport, 'dropped');
        return undefined;
      }
      note(transport, RC.PROTOCOL_ERROR);
      const req0: Request = { ...h, raw: msg.subarray(0, HEADER_SIZE + h.bodyLength), indexes: [], types: [] };
      return respond(req0, RC.PROTOCOL_ERROR, errorBody(`malformed request: ${(err as Error).message}`));
    }
    // A response (or anything with a response code) sent to a server is not answered.
    if (req.responseCode !== RC.RESERVED) {
      note(transport, 'dropped');
      return undefined;
    }
    if (req.opCode === OC.GET_SITE_INFO) {
      note(transport, RC.SUCCESS);
      return siteInfo(req);
    }
    if (req.opCode !== OC.RESOLUTION) {
      note(transport, RC.OPERATION_NOT_SUPPORTED);
      return respond(
        req,
        RC.OPERATION_NOT_SUPPORTED,
        errorBody(
          `operation ${req.opCode} is not supported here: idnode answers RESOLUTION (1) and GET_SITE_INFO (2) over the native protocol; use the HTTP API for the rest`,
        ),
      );
    }
    const handle = req.handle!;
    let text: string;
    try {
      text = utf8.decode(handle);
    } catch {
      note(transport, RC.INVALID_HANDLE);
      return respond(req, RC.INVALID_HANDLE, errorBody('the handle is not valid UTF-8'));
    }
    const bypass = (req.opFlags & MSG_FLAG.AUTH) !== 0;
    const hit = bypass ? undefined : deps.resolver.cached(foldCase(text));
    if (hit !== undefined) {
      const out = fromEntry(req, handle, hit);
      note(transport, out.readUInt32BE(ENVELOPE_SIZE + 4), performance.now() - t0, 'cache');
      return out;
    }
    let id;
    try {
      id = parseIdentifier(text);
    } catch (err) {
      const out = failure(req, err);
      note(transport, out.readUInt32BE(ENVELOPE_SIZE + 4));
      return out;
    }
    if (inFlight >= opts.maxInFlight) {
      note(transport, RC.SERVER_TOO_BUSY);
      return respond(req, RC.SERVER_TOO_BUSY, errorBody(`${inFlight} native requests are in flight (config native.maxInFlight); retry shortly`));
    }
    inFlight++;
    return deps.resolver
      .resolve(id, { bypassCache: bypass, privateAccess: false, hops: 0 })
      .then(
        (r) => {
          const out = fromEntry(req, handle, r.entry);
          note(transport, out.readUInt32BE(ENVELOPE_SIZE + 4), performance.now() - t0, r.source);
          return out;
        },
        (err: unknown) => {
          const out = failure(req, err);
          note(transport, out.readUInt32BE(ENVELOPE_SIZE + 4));
          return out;
        },
      )
      .finally(() => inFlight--);
  }

  // ---- UDP
  let udp: UdpSocket | undefined;
  function onDatagram(msg: Buffer, rinfo: { address: string; port: number }): void {
    let env;
    try {
      if (msg.length > opts.maxMessageBytes) throw new CodecError('datagram too large');
      env = decodeEnvelope(msg);
      // Multi-datagram, compressed and encrypted requests are not supported: dropped, the client retries over TCP.
      if (env.messageLength !== msg.length - ENVELOPE_SIZE || (env.flags & (ENV_FLAG.COMPRESSED | ENV_FLAG.ENCRYPTED | ENV_FLAG.TRUNCATED)) !== 0)
        throw new CodecError('unsupported datagram');
    } catch {
      note('udp', 'dropped');
      return;
    }
    const send = (out: Buffer | undefined) => {
      if (out === undefined || udp === undefined) return;
      const base = { major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR, sessionId: env.sessionId, requestId: env.requestId };
      // Too large for UDP: an empty truncated reply; HANDLE.NET clients then ask again over TCP.
      const length = out.length - ENVELOPE_SIZE;
      let grams: Buffer[];
      if (length > opts.udpMaxResponseBytes) grams = [encodeEnvelope({ ...base, flags: ENV_FLAG.TRUNCATED, messageId: 0, messageLength: 0 })];
      else if (length <= UDP_DATA_SIZE) grams = [encodeEnvelope({ ...base, flags: 0, messageId: 0, messageLength: length }, out, 0)];
      else grams = udpDatagrams(base, out.subarray(ENVELOPE_SIZE));
      for (const g of grams) udp.send(g, rinfo.port, rinfo.address);
    };
    try {
      const out = answer(msg.subarray(ENVELOPE_SIZE), 'udp');
      if (out instanceof Promise) out.then(send, (err: unknown) => deps.logError?.(err, 'native UDP answer failed'));
      else send(out);
    } catch (err) {
      deps.logError?.(err, 'native UDP request failed');
    }
  }

  // ---- TCP
  const sockets = new Set<Socket>();
  function onConnection(sock: Socket): void {
    sockets.add(sock);
    sock.setNoDelay(true);
    sock.setTimeout(opts.idleTimeoutMs, () => sock.destroy());
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let pending: Buffer = Buffer.alloc(0);
    // Answers leave in the order requests arrived.
    let chain: Promise<void> = Promise.resolve();
    sock.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= ENVELOPE_SIZE) {
        let env;
        try {
          env = decodeEnvelope(pending);
          if (env.messageLength > opts.maxMessageBytes) throw new CodecError('message too large');
          if ((env.flags & (ENV_FLAG.COMPRESSED | ENV_FLAG.ENCRYPTED)) !== 0) throw new CodecError('compressed or encrypted');
        } catch {
          note('tcp', 'dropped');
          sock.destroy();
          return;
        }
        if (pending.length < ENVELOPE_SIZE + env.messageLength) break;
        const msg = pending.subarray(ENVELOPE_SIZE, ENVELOPE_SIZE + env.messageLength);
        pending = pending.subarray(ENVELOPE_SIZE + env.messageLength);
        const base = { major: PROTOCOL_MAJOR, minor: PROTOCOL_MINOR, sessionId: env.sessionId, requestId: env.requestId };
        let out;
        try {
          out = answer(msg, 'tcp');
        } catch (err) {
          deps.logError?.(err, 'native TCP request failed');
          sock.destroy();
          return;
        }
        const write = (o: Buffer | undefined) => {
          if (o !== undefined && !sock.destroyed)
            sock.write(encodeEnvelope({ ...base, flags: 0, messageId: 0, messageLength: o.length - ENVELOPE_SIZE }, o, 0));
        };
        if (out instanceof Promise) {
          const p = out;
          chain = chain.then(() => p.then(write));
        } else if (out !== undefined) {
          const o = out;
          chain = chain.then(() => write(o));
        }
      }
    });
  }
  let tcp: Server | undefined;

  return {
    async listen() {
      tcp = createServer(onConnection);
      await new Promise<void>((resolve, reject) => {
        tcp!.once('error', reject);
        tcp!.listen({ host: opts.host, port: opts.port }, () => resolve());
      });
      const addr = tcp.address();
      boundPort = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
      udp = createSocket({ type: isIPv6(opts.host) ? 'udp6' : 'udp4' });
      udp.on('message', onDatagram);
      udp.on('error', (err) => deps.logError?.(err, 'native UDP socket error'));
      try {
        await new Promise<void>((resolve, reject) => {
          udp!.once('error', reject);
          udp!.bind({ address: opts.host, port: boundPort }, () => resolve());
        });
      } catch (err) {
        // Half a listener is worse than none: the TCP side goes too.
        await this.close();
        throw err;
      }
      return boundPort;
    },
    port: () => boundPort,
    inFlight: () => inFlight,
    async close() {
      for (const s of sockets) s.destroy();
      const t = tcp;
      const u = udp;
      tcp = undefined;
      udp = undefined;
      if (u !== undefined) await new Promise<void>((resolve) => u.close(() => resolve()));
      if (t !== undefined) await new Promise<void>((resolve) => t.close(() => resolve()));
    },
  };
}
