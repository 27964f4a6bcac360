/**
 * The native Handle protocol (src/native): the codec, a fuzz of the decoder, the server over
 * UDP and TCP with our own encoder (filters, errors, bounds), and HANDLE.NET 9's own client
 * (test/tools/handle-client) against a real node.
 */
import t, { type Test } from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, createServer as createTcpServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  CodecError,
  decodeEnvelope,
  decodeHeader,
  decodeRequest,
  decodeResolutionBody,
  decodeSite,
  ENV_FLAG,
  ENVELOPE_SIZE,
  encodeEnvelope,
  encodeResolutionRequest,
  encodeSite,
  encodeValue,
  valueData,
  MSG_FLAG,
  OC,
  RC,
  responseBody,
  udpDatagrams,
} from '../src/native/codec.js';
import { createNativeServer } from '../src/native/server.js';
import { ADMIN, type Client, listenLocal, startNode } from './helpers.js';

const HDL_RESOLVE = fileURLToPath(new URL('./tools/handle-client/hdl-resolve', import.meta.url));
const SEEDED = '88.100.1/ENGINE-2026-000001';

/** A port free for both TCP and UDP on 127.0.0.1 (native.port 0 means "off", so tests pick one). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const srv = createTcpServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, '127.0.0.1', () => r(true));
    });
    await new Promise<void>((r) => srv.close(() => r()));
    await new Promise<void>((r) => {
      try {
        udp.close(() => r());
      } catch {
        r();
      }
    });
    if (ok) return port;
  }
  throw new Error('no free port for TCP and UDP');
}

async function nativeNode(t: Test, overrides: Record<string, unknown> = {}) {
  const port = await freePort();
  const extra = (overrides.native ?? {}) as Record<string, unknown>;
  const node = await startNode(t, { seed: true, ...overrides, native: { port, ...extra } });
  t.equal(node.node.native?.port(), port, 'native listeners bound');
  return { ...node, port };
}

interface Reply {
  envelope: ReturnType<typeof decodeEnvelope>;
  datagrams: Buffer[];
  message: Buffer;
}

/** Sends one UDP request and collects every datagram of the answer (or the empty truncated reply). */
function udpAsk(port: number, frame: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const parts = new Map<number, Buffer>();
    const grams: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error('no UDP answer within 15 s'));
    }, 15_000);
    sock.on('message', (d) => {
      grams.push(d);
      const env = decodeEnvelope(d);
      parts.set(env.messageId, d.subarray(ENVELOPE_SIZE));
      const count = Math.ceil(env.messageLength / 492);
      if (parts.size >= count) {
        clearTimeout(timer);
        sock.close();
        const message = Buffer.concat([...Array(count).keys()].map((i) => parts.get(i)!));
        resolve({ envelope: env, datagrams: grams, message });
      }
    });
    sock.send(frame, port, '127.0.0.1');
  });
}

/** Sends TCP frames on one connection and reads as many answers. */
function tcpAsk(port: number, frames: Buffer[], expect = frames.length): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= ENVELOPE_SIZE) {
        const len = buf.readInt32BE(16);
        if (buf.length < ENVELOPE_SIZE + len) break;
        out.push(buf.subarray(ENVELOPE_SIZE, ENVELOPE_SIZE + len));
        buf = buf.subarray(ENVELOPE_SIZE + len);
      }
      if (out.length >= expect) {
        sock.destroy();
        resolve(out);
      }
    });
    sock.on('error', reject);
    sock.on('close', () => (out.length < expect ? reject(new Error(`connection closed after ${out.length} answers`)) : undefined));
    for (const f of frames) sock.write(f);
  });
}

function request(opts: Parameters<typeof encodeResolutionRequest>[0]) {
  const { envelope, message } = encodeResolutionRequest(opts);
  return { frame: Buffer.concat([encodeEnvelope(envelope), message]), message };
}

function errorText(message: Buffer): string {
  const body = responseBody(message);
  return body.subarray(4, 4 + body.readUInt32BE(0)).toString('utf8');
}

async function both(port: number, opts: Parameters<typeof encodeResolutionRequest>[0]): Promise<{ udp: Buffer; tcp: Buffer }> {
  const { frame } = request(opts);
  const [udp, tcp] = await Promise.all([udpAsk(port, frame), tcpAsk(port, [frame])]);
  return { udp: udp.message, tcp: tcp[0]! };
}

async function put(c: Client, id: string, values: unknown) {
  const r = await c.call('PUT', `/api/handles/${encodeURI(id)}`, { token: ADMIN, body: values });
  if (r.status !== 200 && r.status !== 201) throw new Error(r.text);
}

// ---------------------------------------------------------------- codec

t.test('codec: values round-trip in the HANDLE.NET layout', async (t) => {
  const bytes = encodeValue({
    index: 100,
    type: 'HS_ADMIN',
    data: { format: 'admin', value: { handle: '88.100/ADMIN', index: 300, permissions: '111111111111' } },
    ttl: 86400,
    timestamp: '2026-01-01T00:00:00Z',
  });
  // The README of the client shows this HS_ADMIN data for 0FFF permissions, 88.100/ADMIN, index 300.
  const body = Buffer.concat([Buffer.from([0, 0, 0, 1, 0x41]), Buffer.from([0, 0, 0, 1]), bytes]);
  const { handle, values } = decodeResolutionBody(body);
  t.equal(handle, 'A');
  t.equal(values[0]!.data.toString('hex').toUpperCase(), '0FFF0000000C38382E3130302F41444D494E0000012C');
  t.equal(values[0]!.index, 100);
  t.equal(values[0]!.timestamp, Date.parse('2026-01-01T00:00:00Z') / 1000);
  t.equal(values[0]!.ttlType, 0);
  t.equal(values[0]!.ttl, 86400);
  t.equal(values[0]!.permissions, 0b1110);

  const more = [
    encodeValue({
      index: 2,
      type: '名称',
      data: { format: 'string', value: '汽油发动机' },
      ttl: '2027-01-01T00:00:00Z',
      timestamp: '2026-01-01T00:00:00Z',
      permissions: '1111',
      references: [{ handle: '88.100/R', index: 7 }],
    }),
    encodeValue({ index: 3, type: 'h', data: { format: 'hex', value: '00ff' }, ttl: 0, timestamp: '2026-01-01T00:00:00Z' }),
    encodeValue({ index: 4, type: 'b', data: { format: 'base64', value: 'AQID' }, ttl: 5, timestamp: '2026-01-01T00:00:00Z' }),
    encodeValue({
      index: 200,
      type: 'HS_VLIST',
      data: { format: 'vlist', value: [{ handle: '88.100/A', index: 300 }] },
      ttl: 5,
      timestamp: '2026-01-01T00:00:00Z',
    }),
  ];
  const list = decodeResolutionBody(Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 4]), ...more])).values;
  t.equal(list[0]!.type, '名称');
  t.equal(list[0]!.data.toString('utf8'), '汽油发动机');
  t.equal(list[0]!.ttlType, 1, 'an ISO ttl is absolute');
  t.equal(list[0]!.ttl, Date.parse('2027-01-01T00:00:00Z') / 1000);
  t.same(list[0]!.references, [{ handle: '88.100/R', index: 7 }]);
  t.equal(list[0]!.permissions, 0b1111);
  t.same([...list[1]!.data], [0, 255]);
  t.same([...list[2]!.data], [1, 2, 3]);
  t.equal(list[3]!.data.toString('hex'), '00000001' + '00000008' + Buffer.from('88.100/A').toString('hex') + '0000012c');
});

t.test('codec: requests, site records, UDP datagrams', async (t) => {
  const { envelope, message } = encodeResolutionRequest({ handle: SEEDED, indexes: [1, 7], types: ['URL'], opFlags: MSG_FLAG.RRDG, requestId: 42 });
  const env = decodeEnvelope(encodeEnvelope(envelope));
  t.same(env, envelope);
  const req = decodeRequest(message);
  t.equal(req.opCode, OC.RESOLUTION);
  t.equal(req.handle!.toString(), SEEDED);
  t.same(req.indexes, [1, 7]);
  t.same(
    req.types.map((x) => x.toString()),
    ['URL'],
  );
  t.equal(req.raw.length, message.length);

  const site = decodeSite(
    encodeSite({
      serialNumber: 3,
      primarySite: true,
      multiPrimary: false,
      attributes: [{ name: 'http', value: 'http://127.0.0.1:8000' }],
      servers: [{ serverId: 1, address: '127.0.0.1', interfaces: [{ query: true, admin: false, protocol: 'TCP', port: 2641 }] }],
    }),
  );
  t.equal(site.serialNumber, 3);
  t.same(site.attributes, [{ name: 'http', value: 'http://127.0.0.1:8000' }]);
  t.equal(site.servers[0]!.address, '127.0.0.1');
  t.equal(site.address[0]!.toString('hex'), '0000000000000000000000007f000001', 'IPv4 as ::a.b.c.d');
  t.same(site.servers[0]!.interfaces, [{ query: true, admin: false, protocol: 'TCP', port: 2641 }]);

  // An HS_SITE value as the REST API stores it (Handle.Net's JSON site shape) becomes a binary site record.
  const fromJson = decodeSite(
    valueData({
      format: 'site',
      value: {
        serialNumber: 2,
        primarySite: false,
        multiPrimary: true,
        attributes: [{ name: 'desc', value: '主站' }],
        servers: [{ serverId: 7, address: '2001:db8::1', interfaces: [{ query: true, admin: true, protocol: 'UDP', port: 3641 }] }],
      },
    }),
  );
  t.equal(fromJson.serialNumber, 2);
  t.equal(fromJson.primarySite, false);
  t.equal(fromJson.multiPrimary, true);
  t.same(fromJson.attributes, [{ name: 'desc', value: '主站' }]);
  t.equal(fromJson.address[0]!.toString('hex'), '20010db8000000000000000000000001');
  t.same(fromJson.servers[0]!.interfaces, [{ query: true, admin: true, protocol: 'UDP', port: 3641 }]);

  const big = Buffer.alloc(1200, 7);
  const grams = udpDatagrams({ major: 2, minor: 10, sessionId: 0, requestId: 9 }, big);
  t.equal(grams.length, 3);
  for (const [i, g] of grams.entries()) {
    t.ok(g.length <= 512, 'a datagram is at most 512 bytes');
    const e = decodeEnvelope(g);
    t.equal(e.messageId, i);
    t.equal(e.messageLength, 1200);
    t.equal(e.flags & ENV_FLAG.TRUNCATED, ENV_FLAG.TRUNCATED, 'multi-datagram answers carry the truncation flag');
  }
  t.equal(decodeEnvelope(udpDatagrams({ major: 2, minor: 10, sessionId: 0, requestId: 9 }, Buffer.alloc(100))[0]!).flags, 0);
  t.throws(() => decodeEnvelope(Buffer.alloc(19)), CodecError);
  t.throws(() => decodeHeader(Buffer.alloc(10)), CodecError);
});

t.test('codec: defaults of a sparse site value, digests of other hashes', async (t) => {
  const sparse = decodeSite(valueData({ format: 'site', value: { servers: [{ interfaces: [{ protocol: 'SCTP' }] }, {}] } }));
  t.equal(sparse.serialNumber, 1);
  t.equal(sparse.primarySite, true);
  t.same(sparse.attributes, []);
  t.same(
    sparse.servers.map((x) => [x.serverId, x.address, x.interfaces]),
    [
      [1, '0.0.0.0', [{ query: true, admin: false, protocol: 'TCP', port: 0 }]],
      [2, '0.0.0.0', []],
    ],
    'missing fields take the defaults; an unknown protocol is TCP',
  );
  // A response carrying an MD5 (1) or SHA-1 (2) request digest: the body starts after it.
  for (const [alg, size] of [
    [1, 16],
    [2, 20],
  ] as const) {
    const body = Buffer.from('body');
    const msg = Buffer.alloc(24 + 1 + size + body.length);
    msg.writeUInt32BE(MSG_FLAG.RRDG >>> 0, 8);
    msg.writeInt32BE(1 + size + body.length, 20);
    msg[24] = alg;
    body.copy(msg, 25 + size);
    t.equal(responseBody(msg).toString(), 'body');
  }
});

/** mulberry32: a small seeded PRNG, so a failing input can be reproduced. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(rand: () => number, base: Buffer): Buffer {
  const b = Buffer.from(base);
  const kind = Math.floor(rand() * 4);
  if (kind === 0) for (let i = 0; i < 1 + rand() * 6; i++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
  if (kind === 1) return b.subarray(0, Math.floor(rand() * b.length));
  if (kind === 2) b.writeUInt32BE(Math.floor(rand() * 0xffffffff), 4 * Math.floor(rand() * Math.floor(b.length / 4)));
  if (kind === 3) return Buffer.concat([b, Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)))]);
  return b;
}

t.test('fuzz: the decoder answers or throws CodecError on random and mutated messages', async (t) => {
  const rand = prng(0x1d0de);
  const { message } = encodeResolutionRequest({ handle: SEEDED, indexes: [1], types: ['URL', 'EMAIL'] });
  let decoded = 0;
  let refused = 0;
  for (let i = 0; i < 4000; i++) {
    const input = i % 2 === 0 ? Buffer.from(Array.from({ length: Math.floor(rand() * 120) }, () => Math.floor(rand() * 256))) : mutate(rand, message);
    try {
      const r = decodeRequest(input);
      if (r.raw.length > input.length || r.raw.length !== 24 + r.bodyLength) t.fail(`seed 0x1d0de, input ${i}: ${input.toString('hex')}`);
      decoded++;
    } catch (err) {
      if (!(err instanceof CodecError)) {
        t.fail(`seed 0x1d0de, input ${i} threw ${String(err)}: ${input.toString('hex')}`);
        return;
      }
      refused++;
    }
  }
  t.ok(decoded > 100 && refused > 100, `both outcomes seen (decoded ${decoded}, refused ${refused})`);
});

// ---------------------------------------------------------------- server, our own client

t.test('resolves over UDP and TCP with the answers of the REST API', async (t) => {
  const n = await nativeNode(t);
  const rest = await n.call('GET', `/api/handles/${SEEDED}`);
  for (const [transport, msg] of Object.entries(await both(n.port, { handle: SEEDED }))) {
    const h = decodeHeader(msg);
    t.equal(h.responseCode, RC.SUCCESS, transport);
    const { handle, values } = decodeResolutionBody(responseBody(msg));
    t.equal(handle, SEEDED);
    t.same(
      values.map((v) => [v.index, v.type, v.data.toString('utf8')]),
      rest.json.values.map((v: { index: number; type: string; data: { value: string } }) => [v.index, v.type, v.data.value]),
      `${transport}: the same values as GET /api/handles`,
    );
  }
  // Case variant, as the REST API folds ASCII case.
  const variant = await both(n.port, { handle: '88.100.1/engine-2026-000001' });
  t.equal(decodeHeader(variant.udp).responseCode, RC.SUCCESS);
  t.equal(decodeResolutionBody(responseBody(variant.tcp)).values.length, rest.json.values.length);

  // A restricted value (index 20, permissions 1100) is never sent.
  const restricted = await both(n.port, { handle: '88.100.1/ENGINE-2026-000003' });
  const idx = decodeResolutionBody(responseBody(restricted.tcp)).values.map((v) => v.index);
  t.ok(idx.length > 0);
  t.notOk(idx.includes(20), 'the value without public read is left out');
  const asked = await both(n.port, { handle: '88.100.1/ENGINE-2026-000003', indexes: [20] });
  t.equal(decodeHeader(asked.udp).responseCode, RC.VALUES_NOT_FOUND, 'asking for it by index finds nothing');
});

t.test('type and index filters, and every error the REST mapping has', async (t) => {
  const n = await nativeNode(t);
  const pick = async (opts: Parameters<typeof encodeResolutionRequest>[0]) => {
    const { udp, tcp } = await both(n.port, opts);
    t.same(udp, tcp, 'UDP and TCP give the same answer');
    return udp;
  };
  const byIndex = decodeResolutionBody(responseBody(await pick({ handle: SEEDED, indexes: [2, 4] }))).values;
  t.same(
    byIndex.map((v) => v.index),
    [2, 4],
  );
  const byType = decodeResolutionBody(responseBody(await pick({ handle: SEEDED, types: ['url', 'email'] }))).values;
  t.same(
    byType.map((v) => v.type),
    ['URL', 'EMAIL'],
    'types match without regard to ASCII case',
  );
  const either = decodeResolutionBody(responseBody(await pick({ handle: SEEDED, indexes: [3], types: ['URL'] }))).values;
  t.same(
    either.map((v) => v.index),
    [1, 3],
    'indexes and types are OR-ed',
  );
  const dotted = decodeResolutionBody(responseBody(await pick({ handle: SEEDED, types: ['email.'] }))).values;
  t.same(
    dotted.map((v) => v.type),
    ['EMAIL'],
    'a type ending in "." matches the type itself',
  );
  const none = await pick({ handle: SEEDED, types: ['nothing'] });
  t.equal(decodeHeader(none).responseCode, RC.VALUES_NOT_FOUND);
  t.match(errorText(none), /no value/);

  const missing = await pick({ handle: '88.100.1/NO-SUCH' });
  t.equal(decodeHeader(missing).responseCode, RC.HANDLE_NOT_FOUND);
  t.match(errorText(missing), /not registered/);
  const elsewhere = await pick({ handle: '99.9/X' });
  t.equal(decodeHeader(elsewhere).responseCode, RC.SERVER_NOT_RESP);
  const invalid = await pick({ handle: 'no-slash-here' });
  t.equal(decodeHeader(invalid).responseCode, RC.INVALID_HANDLE);
  const badUtf8 = request({ handle: 'x' });
  badUtf8.frame[ENVELOPE_SIZE + 24 + 4] = 0xff;
  t.equal(decodeHeader((await udpAsk(n.port, badUtf8.frame)).message).responseCode, RC.INVALID_HANDLE);

  const create = await pick({ handle: SEEDED, opCode: 100 });
  t.equal(decodeHeader(create).responseCode, RC.OPERATION_NOT_SUPPORTED);
  t.equal(decodeHeader(create).opCode, 100);
  t.match(errorText(create), /not supported/);

  // A request whose body is cut short: a protocol error, not a crash.
  const { message } = encodeResolutionRequest({ handle: SEEDED });
  const cut = Buffer.from(message);
  cut.writeInt32BE(2, 20);
  const env = { major: 2, minor: 10, flags: 0, sessionId: 0, requestId: 5, messageId: 0, messageLength: 26 };
  const short = (await tcpAsk(n.port, [Buffer.concat([encodeEnvelope(env), cut.subarray(0, 26)])]))[0]!;
  t.equal(decodeHeader(short).responseCode, RC.PROTOCOL_ERROR);
  t.match(errorText(short), /malformed/);
});

t.test('request digest, site info, several requests on one TCP connection', async (t) => {
  const n = await nativeNode(t);
  const { frame, message } = request({ handle: SEEDED, opFlags: MSG_FLAG.RRDG, requestId: 77 });
  const r = await udpAsk(n.port, frame);
  t.equal(r.envelope.requestId, 77, 'the answer names the request');
  const h = decodeHeader(r.message);
  t.equal(h.opFlags & MSG_FLAG.RRDG, MSG_FLAG.RRDG);
  t.equal(r.message[24], 3, 'SHA-256');
  t.same(r.message.subarray(25, 57), createHash('sha256').update(message).digest(), 'digest of the request header and body');
  t.equal(decodeResolutionBody(responseBody(r.message)).handle, SEEDED);

  const site = request({ handle: '', opCode: OC.GET_SITE_INFO });
  const answers = await tcpAsk(n.port, [site.frame, request({ handle: SEEDED }).frame, request({ handle: '88.100.1/NO' }).frame]);
  t.equal(answers.length, 3);
  t.equal(decodeHeader(answers[0]!).responseCode, RC.SUCCESS);
  const info = decodeSite(responseBody(answers[0]!));
  t.same(info.servers[0]!.interfaces.map((i) => [i.protocol, i.port, i.query]).sort(), [
    ['TCP', n.port, true],
    ['UDP', n.port, true],
  ]);
  t.equal(info.servers[0]!.address, '127.0.0.1');
  t.same(
    info.attributes.find((a) => a.name === 'http'),
    { name: 'http', value: n.url },
    'the HTTP base URL is an attribute',
  );
  t.equal(decodeHeader(answers[1]!).responseCode, RC.SUCCESS, 'answers come back in order');
  t.equal(decodeHeader(answers[2]!).responseCode, RC.HANDLE_NOT_FOUND);
});

t.test('a large record: UDP gets an empty truncated reply, TCP the whole answer', async (t) => {
  const n = await nativeNode(t);
  const values = Array.from({ length: 24 }, (_, i) => ({ index: i + 1, type: `part${i}`, data: 'x'.repeat(900) }));
  await put(n, '88.100.1/BIG-1', values);
  const { frame } = request({ handle: '88.100.1/BIG-1' });
  const udp = await udpAsk(n.port, frame);
  t.equal(udp.datagrams.length, 1);
  t.equal(udp.envelope.flags & ENV_FLAG.TRUNCATED, ENV_FLAG.TRUNCATED);
  t.equal(udp.envelope.messageLength, 0);
  const [tcp] = await tcpAsk(n.port, [frame]);
  t.equal(decodeResolutionBody(responseBody(tcp!)).values.length, 24);
  t.ok(tcp!.length > n.config.native.udpMaxResponseBytes);
  // Between one datagram and the bound: several 512-byte datagrams.
  const mid = await udpAsk(n.port, request({ handle: '88.100.1/BIG-1', indexes: [1, 2, 3] }).frame);
  t.ok(mid.datagrams.length > 1);
  t.ok(mid.datagrams.every((d) => d.length <= 512));
  t.equal(decodeResolutionBody(responseBody(mid.message)).values.length, 3);
});

t.test('bounds: malformed datagrams are dropped, oversized TCP frames close, too busy, idle close, metrics', async (t) => {
  // An upstream that never answers keeps a forwarded request in flight.
  const hung = createHttpServer(() => undefined);
  const n = await nativeNode(t, {
    upstream: { url: await listenLocal(t, hung), timeoutMs: 60_000, deadlineMs: 60_000 },
    native: { maxInFlight: 1, maxMessageBytes: 1024, idleTimeoutMs: 200 },
  });

  // Random and mutated datagrams: none crashes the server, which still answers afterwards.
  const rand = prng(42);
  const base = request({ handle: SEEDED }).frame;
  const sock = createSocket('udp4');
  let answered = 0;
  for (let i = 0; i < 300; i++) {
    const d = i % 3 === 0 ? Buffer.from(Array.from({ length: Math.floor(rand() * 100) }, () => Math.floor(rand() * 256))) : mutate(rand, base);
    await new Promise<void>((r) => sock.send(d, n.port, '127.0.0.1', () => r()));
    // A valid request after every 50: its answer means the server read the ones before (and the socket's buffer never overflows).
    if (i % 50 === 49 && decodeHeader((await udpAsk(n.port, base)).message).responseCode === RC.SUCCESS) answered++;
  }
  sock.close();
  t.equal(answered, 6, 'still answering between and after 300 bad datagrams');

  const closed = await new Promise<string>((resolve) => {
    const c = connect(n.port, '127.0.0.1');
    const env = encodeEnvelope({ major: 2, minor: 10, flags: 0, sessionId: 0, requestId: 1, messageId: 0, messageLength: 5000 });
    c.on('close', () => resolve('closed'));
    c.on('error', () => undefined);
    c.write(env);
  });
  t.equal(closed, 'closed', 'a frame over native.maxMessageBytes closes the connection');

  const compressed = await new Promise<string>((resolve) => {
    const c = connect(n.port, '127.0.0.1');
    const { message } = encodeResolutionRequest({ handle: SEEDED });
    const env = encodeEnvelope({ major: 2, minor: 10, flags: ENV_FLAG.COMPRESSED, sessionId: 0, requestId: 1, messageId: 0, messageLength: message.length });
    c.on('close', () => resolve('closed'));
    c.on('error', () => undefined);
    c.write(Buffer.concat([env, message]));
  });
  t.equal(compressed, 'closed', 'compressed messages are not supported: the connection is closed');

  // One frame in two writes (split after the envelope, inside the message) is read whole.
  const whole = request({ handle: SEEDED, requestId: 9 }).frame;
  const split = await new Promise<Buffer>((resolve, reject) => {
    const c = connect(n.port, '127.0.0.1', () => {
      c.write(whole.subarray(0, 30));
      setImmediate(() => c.write(whole.subarray(30)));
    });
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= ENVELOPE_SIZE && buf.length >= ENVELOPE_SIZE + buf.readInt32BE(16)) {
        c.destroy();
        resolve(buf.subarray(ENVELOPE_SIZE));
      }
    });
    c.on('error', reject);
  });
  t.equal(decodeHeader(split).responseCode, RC.SUCCESS);

  // A datagram over native.maxMessageBytes is dropped: the next valid one is still answered.
  const oversized = createSocket('udp4');
  await new Promise<void>((r) => oversized.send(Buffer.concat([whole, Buffer.alloc(2000)]), n.port, '127.0.0.1', () => r()));
  oversized.close();
  t.equal(decodeHeader((await udpAsk(n.port, base)).message).responseCode, RC.SUCCESS);

  const idle = await new Promise<string>((resolve) => {
    const c = connect(n.port, '127.0.0.1');
    c.on('close', () => resolve('closed'));
    c.on('error', () => undefined);
  });
  t.equal(idle, 'closed', 'an idle connection is closed after native.idleTimeoutMs');

  const slow = udpAsk(n.port, request({ handle: '88.200/SLOW', requestId: 1 }).frame).catch(() => undefined);
  // Wait for the first request to be in flight (an event, not a duration).
  while (n.node.native!.inFlight() === 0) await new Promise((r) => setImmediate(r));
  const busy = await udpAsk(n.port, request({ handle: '88.200/OTHER', requestId: 2 }).frame);
  t.equal(decodeHeader(busy.message).responseCode, RC.SERVER_TOO_BUSY);
  t.match(errorText(busy.message), /native\.maxInFlight/);
  const hit = await udpAsk(n.port, request({ handle: SEEDED, requestId: 3 }).frame);
  t.equal(decodeHeader(hit.message).responseCode, RC.SUCCESS, 'cache hits are answered while busy');

  const metrics = await n.call('GET', '/metrics');
  t.match(metrics.text, /idnode_native_requests_total\{transport="udp",rc="1"\} \d+/);
  t.match(metrics.text, /idnode_native_requests_total\{transport="udp",rc="dropped"\} \d+/);
  t.match(metrics.text, /idnode_native_requests_total\{transport="udp",rc="3"\} 1/);
  t.match(metrics.text, /idnode_native_requests_total\{transport="tcp",rc="dropped"\} 2/);
  // Let the held upstream request fail now rather than at its 60 s timeout.
  hung.closeAllConnections();
  t.equal((await slow)?.message.readUInt32BE(4), RC.ERROR, 'the request held in flight ends with an error once its upstream goes');
  await n.node.close();
});

t.test('a UDP port already taken fails the listen and releases the TCP side', async (t) => {
  const { node } = await startNode(t);
  const port = await freePort();
  const squatter = createSocket('udp4');
  await new Promise<void>((r) => squatter.bind(port, '127.0.0.1', r));
  t.teardown(() => squatter.close());
  const server = createNativeServer({
    resolver: node.resolver,
    options: { host: '127.0.0.1', port, maxInFlight: 8, maxMessageBytes: 4096, idleTimeoutMs: 1000, udpMaxResponseBytes: 4096 },
    httpBaseUrl: () => 'http://127.0.0.1:1',
  });
  await t.rejects(server.listen(), { code: 'EADDRINUSE' });
  const tcp = createTcpServer();
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => resolve());
  });
  t.pass('the TCP port is free again');
  await new Promise<void>((r) => tcp.close(() => r()));
});

t.test('a forwarded identifier resolves through the upstream', async (t) => {
  const top = await startNode(t, { homed: ['88.200'] });
  await put(top, '88.200/B-1', [{ index: 1, type: 'URL', data: 'https://b/1' }]);
  const a = await nativeNode(t, { homed: ['88.100'], upstream: { url: top.url } });
  const { udp, tcp } = await both(a.port, { handle: '88.200/b-1' });
  for (const msg of [udp, tcp]) {
    t.equal(decodeHeader(msg).responseCode, RC.SUCCESS);
    t.equal(decodeResolutionBody(responseBody(msg)).values[0]!.data.toString(), 'https://b/1');
  }
  const missing = await both(a.port, { handle: '88.200/NOPE' });
  t.equal(decodeHeader(missing.tcp).responseCode, RC.HANDLE_NOT_FOUND, "the upstream's not-found is relayed");
});

// ---------------------------------------------------------------- HANDLE.NET's own client

const hasJava = spawnSync('java', ['-version']).status === 0;

function hdlResolve(args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      HDL_RESOLVE,
      args,
      {
        timeout: 60_000,
        env: { ...process.env, HDL_RESOLVE_TIMEOUT: '50', HDL_JAVA_OPTS: '-Dfile.encoding=UTF-8 -Dsun.stdout.encoding=UTF-8 -Dsun.jnu.encoding=UTF-8' },
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number | string }).code ?? 'killed') : 0, stdout, stderr }),
    );
  });
}

t.test(
  'HANDLE.NET 9 client (hdl-resolve) against a real node',
  { skip: !hasJava && !process.env.CI ? 'java is not installed (CI installs it and fails without it)' : false },
  async (t) => {
    t.ok(hasJava, 'java is on PATH (.ci/run installs openjdk-17-jre-headless)');
    const top = await startNode(t, { homed: ['88.200'] });
    await put(top, '88.200/B-1', [{ index: 1, type: 'URL', data: 'https://b/1' }]);
    const n = await nativeNode(t, { upstream: { url: top.url } });
    await put(n, '88.100.1/CN-1', [
      { index: 1, type: 'URL', data: 'https://例子.example/p/1' },
      { index: 2, type: 'name', data: '汽油发动机 HX-2.0T' },
    ]);
    await put(
      n,
      '88.100.1/BIG-1',
      Array.from({ length: 24 }, (_, i) => ({ index: i + 1, type: `part${i}`, data: `v${i}-` + 'x'.repeat(900) })),
    );
    const port = String(n.port);

    for (const mode of ['--udp', '--tcp']) {
      const r = await hdlResolve([mode, '127.0.0.1', port, SEEDED]);
      t.equal(r.code, 0, `${mode}: ${r.stderr}`);
      t.match(r.stdout, mode === '--udp' ? /received HDL-UDP response/ : /received HDL-TCP response/);
      t.match(r.stdout, /index=1 type=URL \S+ "https:\/\/trace\.huaxia-engine\.example\/p\/ENGINE-2026-000001"/);
      t.match(r.stdout, /index=7 type=EMAIL \S+ "quality@huaxia-engine\.example"/);

      const variant = await hdlResolve([mode, '127.0.0.1', port, '88.100.1/engine-2026-000002']);
      t.equal(variant.code, 0, `${mode} case variant: ${variant.stderr}`);
      t.match(variant.stdout, /index=3 type=model \S+ "HX-1\.5T"/);

      const missing = await hdlResolve([mode, '127.0.0.1', port, '88.100.1/NO-SUCH-HANDLE']);
      t.equal(missing.code, 1, `${mode} not found: ${missing.stderr}`);
      t.match(missing.stdout, /Error\(100\): HANDLE NOT FOUND/);

      const cn = await hdlResolve([mode, '127.0.0.1', port, '88.100.1/CN-1']);
      t.equal(cn.code, 0, `${mode} Chinese text: ${cn.stderr}`);
      t.match(cn.stdout, /index=2 type=name \S+ "汽油发动机 HX-2\.0T"/);
      t.match(cn.stdout, /index=1 type=URL \S+ "https:\/\/例子\.example\/p\/1"/);

      const fwd = await hdlResolve([mode, '127.0.0.1', port, '88.200/B-1']);
      t.equal(fwd.code, 0, `${mode} forwarded: ${fwd.stderr}`);
      t.match(fwd.stdout, /index=1 type=URL \S+ "https:\/\/b\/1"/);

      const restricted = await hdlResolve([mode, '127.0.0.1', port, '88.100.1/ENGINE-2026-000003']);
      t.equal(restricted.code, 0);
      t.notMatch(restricted.stdout, /index=20 /, 'the restricted value is not sent');
    }

    // The client's own order: UDP first; the large answer does not fit, so it asks again over TCP.
    const big = await hdlResolve(['127.0.0.1', port, '88.100.1/BIG-1']);
    t.equal(big.code, 0, big.stderr);
    t.match(big.stdout, /sending HDL-UDP request/);
    t.match(big.stdout, /received HDL-TCP response/);
    t.match(big.stdout, /index=24 type=part23 \S+ "v23-x+"/);
    const bigTcp = await hdlResolve(['--tcp', '127.0.0.1', port, '88.100.1/BIG-1']);
    t.equal(bigTcp.code, 0, bigTcp.stderr);
    t.match(bigTcp.stdout, /index=24 type=part23/);
  },
);
