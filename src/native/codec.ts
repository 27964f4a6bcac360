/**
 * The Handle native protocol's wire format (RFC 3652, as HANDLE.NET 9 speaks it): message
 * envelope, header, body, handle values and site records. Pure: no I/O, no state.
 * Every decoder throws a CodecError on malformed input and never reads past its buffer.
 */
import { createHash } from 'node:crypto';
import type { HandleValue } from '../registry/values.js';

export const ENVELOPE_SIZE = 20;
export const HEADER_SIZE = 24;
/** UDP: each datagram carries at most this many message bytes after its envelope (512-byte datagrams). */
export const UDP_DATA_SIZE = 492;
export const PROTOCOL_MAJOR = 2;
export const PROTOCOL_MINOR = 10;

export const OC = { RESOLUTION: 1, GET_SITE_INFO: 2 } as const;
export const RC = {
  RESERVED: 0,
  SUCCESS: 1,
  ERROR: 2,
  SERVER_TOO_BUSY: 3,
  PROTOCOL_ERROR: 4,
  OPERATION_NOT_SUPPORTED: 5,
  RECURSION_COUNT_TOO_HIGH: 6,
  HANDLE_NOT_FOUND: 100,
  INVALID_HANDLE: 102,
  VALUES_NOT_FOUND: 200,
  SERVER_NOT_RESP: 301,
} as const;

export const ENV_FLAG = { COMPRESSED: 0x80, ENCRYPTED: 0x40, TRUNCATED: 0x20 } as const;
export const MSG_FLAG = {
  AUTH: 0x80000000,
  CERT: 0x40000000,
  ENCR: 0x20000000,
  RECU: 0x10000000,
  CACR: 0x08000000,
  CONT: 0x04000000,
  KPAL: 0x02000000,
  PUBL: 0x01000000,
  RRDG: 0x00800000,
} as const;
export const PERM = { ADMIN_READ: 0x8, ADMIN_WRITE: 0x4, PUBLIC_READ: 0x2, PUBLIC_WRITE: 0x1 } as const;
const HASH_SHA256 = 3;
const MAX_LIST = 4096;

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

export interface Envelope {
  major: number;
  minor: number;
  flags: number;
  sessionId: number;
  requestId: number;
  /** The datagram's sequence number within a multi-datagram UDP message. */
  messageId: number;
  messageLength: number;
}

export interface Header {
  opCode: number;
  responseCode: number;
  opFlags: number;
  siteInfoSerial: number;
  recursionCount: number;
  expiration: number;
  bodyLength: number;
}

export interface Request extends Header {
  /** Header and body bytes: what a request digest covers. */
  raw: Buffer;
  handle?: Buffer;
  indexes: number[];
  types: Buffer[];
}

export function decodeEnvelope(buf: Buffer): Envelope {
  if (buf.length < ENVELOPE_SIZE) throw new CodecError(`an envelope is ${ENVELOPE_SIZE} bytes; got ${buf.length}`);
  const messageLength = buf.readInt32BE(16);
  if (messageLength < 0) throw new CodecError('negative message length');
  return {
    major: buf[0]!,
    minor: buf[1]!,
    flags: buf[2]!,
    sessionId: buf.readInt32BE(4),
    requestId: buf.readInt32BE(8),
    messageId: buf.readInt32BE(12),
    messageLength,
  };
}

export function encodeEnvelope(e: Envelope, out: Buffer = Buffer.allocUnsafe(ENVELOPE_SIZE), at = 0): Buffer {
  out[at] = e.major;
  out[at + 1] = e.minor;
  out[at + 2] = e.flags;
  out[at + 3] = 0;
  out.writeInt32BE(e.sessionId | 0, at + 4);
  out.writeInt32BE(e.requestId | 0, at + 8);
  out.writeInt32BE(e.messageId | 0, at + 12);
  out.writeInt32BE(e.messageLength, at + 16);
  return out;
}

/** A bounds-checked reader over one message. */
function reader(buf: Buffer, start: number, end: number) {
  let at = start;
  const need = (n: number, what: string) => {
    if (n < 0 || at + n > end) throw new CodecError(`${what} runs past the end of the message`);
  };
  return {
    get at() {
      return at;
    },
    u8(what: string): number {
      need(1, what);
      return buf[at++]!;
    },
    u32(what: string): number {
      need(4, what);
      const v = buf.readUInt32BE(at);
      at += 4;
      return v;
    },
    bytes(what: string): Buffer {
      const n = this.u32(`${what} length`);
      need(n, what);
      const b = buf.subarray(at, at + n);
      at += n;
      return b;
    },
    count(what: string): number {
      const n = this.u32(`${what} count`);
      if (n > MAX_LIST) throw new CodecError(`${what} has ${n} items; at most ${MAX_LIST}`);
      return n;
    },
  };
}

export function decodeHeader(msg: Buffer): Header {
  if (msg.length < HEADER_SIZE) throw new CodecError(`a message header is ${HEADER_SIZE} bytes; got ${msg.length}`);
  const bodyLength = msg.readInt32BE(20);
  if (bodyLength < 0 || HEADER_SIZE + bodyLength > msg.length) throw new CodecError(`body length ${bodyLength} does not fit the message (${msg.length} bytes)`);
  return {
    opCode: msg.readUInt32BE(0),
    responseCode: msg.readUInt32BE(4),
    opFlags: msg.readUInt32BE(8),
    siteInfoSerial: msg.readUInt16BE(12),
    recursionCount: msg[14]!,
    expiration: msg.readUInt32BE(16),
    bodyLength,
  };
}

/** Decodes a request message (header + body, without the envelope). */
export function decodeRequest(msg: Buffer): Request {
  const h = decodeHeader(msg);
  const end = HEADER_SIZE + h.bodyLength;
  const req: Request = { ...h, raw: msg.subarray(0, end), indexes: [], types: [] };
  if (h.responseCode !== RC.RESERVED) return req;
  const r = reader(msg, HEADER_SIZE, end);
  if (h.opCode === OC.RESOLUTION) {
    req.handle = r.bytes('handle');
    const n = r.count('index list');
    for (let i = 0; i < n; i++) req.indexes.push(r.u32('index'));
    const t = r.count('type list');
    for (let i = 0; i < t; i++) req.types.push(r.bytes('type'));
  } else if (h.bodyLength >= 4) {
    req.handle = r.bytes('handle');
  }
  return req;
}

export interface ResponseSpec {
  opCode: number;
  responseCode: number;
  /** Flags echoed from the request (certification and digest flags are handled here). */
  requestFlags: number;
  siteInfoSerial: number;
  expiration: number;
  /** The request's header and body: when it asked for a digest, the answer carries one. */
  digestOf?: Buffer;
  body: Buffer[];
}

/** Flags an answer echoes; signing, encryption and sessions are not offered. */
const ECHOED = MSG_FLAG.AUTH | MSG_FLAG.RECU | MSG_FLAG.CACR | MSG_FLAG.KPAL | MSG_FLAG.PUBL;

/**
 * Encodes a response message (header + body). With `headroom`, that many bytes are left free
 * before the header, so a transport can write its envelope there without another copy.
 */
export function encodeResponse(spec: ResponseSpec, headroom = 0): Buffer {
  const digest = spec.digestOf !== undefined && (spec.requestFlags & MSG_FLAG.RRDG) !== 0 ? createHash('sha256').update(spec.digestOf).digest() : undefined;
  let bodyLength = digest === undefined ? 0 : 1 + digest.length;
  for (const b of spec.body) bodyLength += b.length;
  const out = Buffer.allocUnsafe(headroom + HEADER_SIZE + bodyLength);
  const h = headroom;
  out.writeUInt32BE(spec.opCode >>> 0, h);
  out.writeUInt32BE(spec.responseCode, h + 4);
  out.writeUInt32BE(((spec.requestFlags & ECHOED) | (digest === undefined ? 0 : MSG_FLAG.RRDG)) >>> 0, h + 8);
  out.writeUInt16BE(spec.siteInfoSerial & 0xffff, h + 12);
  out[h + 14] = 0;
  out[h + 15] = 0;
  out.writeUInt32BE(spec.expiration >>> 0, h + 16);
  out.writeInt32BE(bodyLength, h + 20);
  let at = h + HEADER_SIZE;
  if (digest !== undefined) {
    out[at++] = HASH_SHA256;
    at += digest.copy(out, at);
  }
  for (const b of spec.body) at += b.copy(out, at);
  return out;
}

export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** A length-prefixed byte string. */
export function lenBytes(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  return Buffer.concat([u32(data.length), data]);
}

export function errorBody(message: string): Buffer[] {
  return [lenBytes(message)];
}

/** The 4-character `permissions` of a value ("1110": admin read, admin write, public read, public write). */
export function permissionBits(p: string | undefined): number {
  const s = p ?? '1110';
  return (
    (s[0] === '1' ? PERM.ADMIN_READ : 0) |
    (s[1] === '1' ? PERM.ADMIN_WRITE : 0) |
    (s[2] === '1' ? PERM.PUBLIC_READ : 0) |
    (s[3] === '1' ? PERM.PUBLIC_WRITE : 0)
  );
}

/** HS_ADMIN: 2-byte permission mask (the JSON's bit string, most significant first), admin handle, index. */
function adminData(v: { handle: string; index: number; permissions: string }): Buffer {
  const perms = Buffer.allocUnsafe(2);
  perms.writeUInt16BE(parseInt(v.permissions, 2) & 0xffff, 0);
  return Buffer.concat([perms, lenBytes(v.handle), u32(v.index)]);
}

function vlistData(refs: { handle: string; index: number }[]): Buffer {
  return Buffer.concat([u32(refs.length), ...refs.flatMap((r) => [lenBytes(r.handle), u32(r.index)])]);
}

/** An IPv4 or IPv6 literal as the 16 bytes of a server record (IPv4 as ::a.b.c.d, HANDLE.NET's form). */
export function addressBytes(host: string): Buffer {
  const out = Buffer.alloc(16);
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (v4) {
    for (let i = 0; i < 4; i++) out[12 + i] = Number(v4[i + 1]) & 0xff;
    return out;
  }
  const h = host.replace(/^\[|\]$/g, '');
  if (!h.includes(':')) return out;
  const [head, tail = ''] = h.includes('::') ? h.split('::') : [h, undefined];
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const groups = tail === undefined && !h.includes('::') ? hs : [...hs, ...Array<string>(Math.max(0, 8 - hs.length - ts.length)).fill('0'), ...ts];
  groups.slice(0, 8).forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  return out;
}

export interface SiteInterface {
  query: boolean;
  admin: boolean;
  protocol: 'UDP' | 'TCP' | 'HTTP' | 'HTTPS';
  port: number;
}
export interface SiteServer {
  serverId: number;
  address: string;
  publicKey?: Buffer;
  interfaces: SiteInterface[];
}
export interface Site {
  serialNumber: number;
  primarySite: boolean;
  multiPrimary: boolean;
  attributes: { name: string; value: string }[];
  servers: SiteServer[];
}

const PROTOCOLS = ['UDP', 'TCP', 'HTTP', 'HTTPS'] as const;

/** A site record (HS_SITE data, GET_SITE_INFO body). */
export function encodeSite(site: Site): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(1, 0); // data format version
  head[2] = PROTOCOL_MAJOR;
  head[3] = PROTOCOL_MINOR;
  head.writeUInt16BE(site.serialNumber & 0xffff, 4);
  head[6] = (site.primarySite ? 0x80 : 0) | (site.multiPrimary ? 0x40 : 0);
  head[7] = 0; // hash by prefix
  const parts: Buffer[] = [head, lenBytes(''), u32(site.attributes.length)];
  for (const a of site.attributes) parts.push(lenBytes(a.name), lenBytes(a.value));
  parts.push(u32(site.servers.length));
  for (const s of site.servers) {
    parts.push(u32(s.serverId), addressBytes(s.address), lenBytes(s.publicKey ?? Buffer.alloc(0)), u32(s.interfaces.length));
    for (const i of s.interfaces) {
      const b = Buffer.allocUnsafe(6);
      b[0] = (i.admin ? 1 : 0) | (i.query ? 2 : 0);
      b[1] = Math.max(0, PROTOCOLS.indexOf(i.protocol));
      b.writeUInt32BE(i.port >>> 0, 2);
      parts.push(b);
    }
  }
  return Buffer.concat(parts);
}

export function decodeSite(buf: Buffer): Site & { address: Buffer[] } {
  const r = reader(buf, 0, buf.length);
  r.u8('format version');
  r.u8('format version');
  r.u8('protocol major');
  r.u8('protocol minor');
  const serialNumber = (r.u8('serial') << 8) | r.u8('serial');
  const mask = r.u8('primary mask');
  r.u8('hash option');
  r.bytes('hash filter');
  const attributes = [];
  for (let i = 0, n = r.count('attributes'); i < n; i++) attributes.push({ name: r.bytes('name').toString('utf8'), value: r.bytes('value').toString('utf8') });
  const servers: SiteServer[] = [];
  const address: Buffer[] = [];
  for (let i = 0, n = r.count('servers'); i < n; i++) {
    const serverId = r.u32('server id');
    const ip = Buffer.alloc(16);
    for (let k = 0; k < 16; k++) ip[k] = r.u8('address');
    address.push(ip);
    const publicKey = r.bytes('public key');
    const interfaces: SiteInterface[] = [];
    for (let j = 0, m = r.count('interfaces'); j < m; j++) {
      const type = r.u8('interface type');
      const protocol = PROTOCOLS[r.u8('interface protocol')] ?? 'UDP';
      interfaces.push({ admin: (type & 1) !== 0, query: (type & 2) !== 0, protocol, port: r.u32('port') });
    }
    const v4 = ip.subarray(0, 12).every((b) => b === 0);
    servers.push({ serverId, address: v4 ? [...ip.subarray(12)].join('.') : ip.toString('hex'), publicKey, interfaces });
  }
  return { serialNumber, primarySite: (mask & 0x80) !== 0, multiPrimary: (mask & 0x40) !== 0, attributes, servers, address };
}

function siteFromJson(v: Record<string, unknown>): Buffer {
  const servers = Array.isArray(v.servers) ? (v.servers as Record<string, unknown>[]) : [];
  return encodeSite({
    serialNumber: typeof v.serialNumber === 'number' ? v.serialNumber : 1,
    primarySite: v.primarySite !== false,
    multiPrimary: v.multiPrimary === true,
    attributes: Array.isArray(v.attributes)
      ? (v.attributes as { name: unknown; value: unknown }[]).map((a) => ({ name: String(a.name), value: String(a.value) }))
      : [],
    servers: servers.map((s, i) => ({
      serverId: typeof s.serverId === 'number' ? s.serverId : i + 1,
      address: typeof s.address === 'string' ? s.address : '',
      interfaces: Array.isArray(s.interfaces)
        ? (s.interfaces as Record<string, unknown>[]).map((f) => ({
            query: f.query !== false,
            admin: f.admin === true,
            protocol: (PROTOCOLS as readonly unknown[]).includes(f.protocol) ? (f.protocol as SiteInterface['protocol']) : 'TCP',
            port: typeof f.port === 'number' ? f.port : 0,
          }))
        : [],
    })),
  });
}

/** The binary data of a value from its JSON `data`. */
export function valueData(data: HandleValue['data']): Buffer {
  const v = data.value;
  switch (data.format) {
    case 'string':
      return Buffer.from(String(v), 'utf8');
    case 'base64':
    case 'key':
      return Buffer.from(String(v), 'base64');
    case 'hex':
      return Buffer.from(String(v), 'hex');
    case 'admin':
      return adminData(v as { handle: string; index: number; permissions: string });
    case 'vlist':
      return vlistData(v as { handle: string; index: number }[]);
    case 'site':
      return siteFromJson(v as Record<string, unknown>);
  }
  return Buffer.from(JSON.stringify(v), 'utf8');
}

/** Seconds since the epoch of an ISO-8601 time (0 when unreadable). */
function epochSeconds(iso: string): number {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? 0 : Math.max(0, Math.min(0xffffffff, Math.floor(ms / 1000)));
}

/** One value in wire form: index, timestamp, ttl type, ttl, permissions, type, data, references. */
export function encodeValue(v: HandleValue): Buffer {
  const type = Buffer.from(v.type, 'utf8');
  const data = valueData(v.data);
  const refs = v.references ?? [];
  const fixed = Buffer.allocUnsafe(14);
  fixed.writeUInt32BE(v.index >>> 0, 0);
  fixed.writeUInt32BE(epochSeconds(v.timestamp), 4);
  const absolute = typeof v.ttl === 'string';
  fixed[8] = absolute ? 1 : 0;
  fixed.writeUInt32BE(absolute ? epochSeconds(v.ttl as string) : Math.min(0xffffffff, Math.max(0, v.ttl as number)), 9);
  fixed[13] = permissionBits(v.permissions);
  return Buffer.concat([fixed, lenBytes(type), lenBytes(data), u32(refs.length), ...refs.flatMap((r) => [lenBytes(r.handle), u32(r.index)])]);
}

export interface WireValue {
  index: number;
  timestamp: number;
  ttlType: number;
  ttl: number;
  permissions: number;
  type: string;
  data: Buffer;
  references: { handle: string; index: number }[];
}

/** Resolution response body (after any digest): handle and values. */
export function decodeResolutionBody(body: Buffer): { handle: string; values: WireValue[] } {
  const r = reader(body, 0, body.length);
  const handle = r.bytes('handle').toString('utf8');
  const values: WireValue[] = [];
  for (let i = 0, n = r.count('values'); i < n; i++) {
    const index = r.u32('index');
    const timestamp = r.u32('timestamp');
    const ttlType = r.u8('ttl type');
    const ttl = r.u32('ttl');
    const permissions = r.u8('permissions');
    const type = r.bytes('type').toString('utf8');
    const data = r.bytes('data');
    const references = [];
    for (let j = 0, m = r.count('references'); j < m; j++) references.push({ handle: r.bytes('reference').toString('utf8'), index: r.u32('reference index') });
    values.push({ index, timestamp, ttlType, ttl, permissions, type, data, references });
  }
  return { handle, values };
}

/** A response body without its request digest, when it has one. */
export function responseBody(msg: Buffer): Buffer {
  const h = decodeHeader(msg);
  let at = HEADER_SIZE;
  if ((h.opFlags & MSG_FLAG.RRDG) !== 0) {
    const alg = msg[at];
    at += 1 + (alg === 3 ? 32 : alg === 2 ? 20 : 16);
  }
  return msg.subarray(at, HEADER_SIZE + h.bodyLength);
}

export function encodeResolutionRequest(opts: {
  handle: string;
  indexes?: number[];
  types?: string[];
  opFlags?: number;
  opCode?: number;
  requestId?: number;
}): { envelope: Envelope; message: Buffer } {
  const indexes = opts.indexes ?? [];
  const types = opts.types ?? [];
  const body = Buffer.concat([lenBytes(opts.handle), u32(indexes.length), ...indexes.map(u32), u32(types.length), ...types.map((t) => lenBytes(t))]);
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32BE(opts.opCode ?? OC.RESOLUTION, 0);
  header.writeUInt32BE((opts.opFlags ?? 0) >>> 0, 8);
  header.writeInt32BE(body.length, 20);
  const message = Buffer.concat([header, body]);
  const envelope = {
    major: PROTOCOL_MAJOR,
    minor: PROTOCOL_MINOR,
    flags: 0,
    sessionId: 0,
    requestId: opts.requestId ?? 1,
    messageId: 0,
    messageLength: message.length,
  };
  return { envelope, message };
}

/** The datagrams of one UDP message: 492 message bytes each, sequence-numbered, truncation flag on when more than one. */
export function udpDatagrams(env: Omit<Envelope, 'messageId' | 'messageLength' | 'flags'>, message: Buffer): Buffer[] {
  const count = Math.max(1, Math.ceil(message.length / UDP_DATA_SIZE));
  const flags = count > 1 ? ENV_FLAG.TRUNCATED : 0;
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const chunk = message.subarray(i * UDP_DATA_SIZE, (i + 1) * UDP_DATA_SIZE);
    const d = Buffer.allocUnsafe(ENVELOPE_SIZE + chunk.length);
    encodeEnvelope({ ...env, flags, messageId: i, messageLength: message.length }, d, 0);
    chunk.copy(d, ENVELOPE_SIZE);
    out.push(d);
  }
  return out;
}
