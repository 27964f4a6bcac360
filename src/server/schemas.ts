/** Route schemas (TypeBox → JSON Schema): validation, fast serialisation and /docs. */
import { Type } from '@sinclair/typebox';

/** Bounds of numeric query parameters: a huge or non-finite number (`1e309`) is a 400, never reaches SQLite. */
const INT32_MAX = 2147483647;
const SEQ_MAX = Number.MAX_SAFE_INTEGER;
const UINT32_MAX = 4294967295;

export const ErrorBody = Type.Object(
  {
    responseCode: Type.Integer({ description: 'Handle responseCode' }),
    handle: Type.Optional(Type.String()),
    message: Type.String({ description: 'What went wrong and what to fix' }),
    code: Type.String({ description: 'Stable IDN_* error code (README error table)' }),
  },
  { $id: 'ErrorBody' },
);

/** A value as a client may send it (docs only: the registry checks bodies, ignoring unknown fields as Handle.Net does). */
export const HandleValue = Type.Object(
  {
    index: Type.Union([
      Type.Integer({ minimum: 1, maximum: 4294967295 }),
      Type.String({ pattern: '^[0-9]{1,10}$', description: 'A decimal string is read as the number' }),
    ]),
    type: Type.String({ examples: ['URL', 'name', 'batch'] }),
    data: Type.Union([
      Type.String({ description: 'A bare string means format "string"' }),
      Type.Object({
        format: Type.Union(['string', 'base64', 'hex', 'admin', 'vlist', 'site', 'key'].map((f) => Type.Literal(f))),
        value: Type.Unknown(),
      }),
    ]),
    ttl: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.String({ format: 'date-time' })], { default: 86400 })),
    timestamp: Type.Optional(Type.String({ description: 'Set by the server' })),
    permissions: Type.Optional(Type.String({ pattern: '^[01]{4}$', description: 'adminRead adminWrite publicRead publicWrite; default 1110' })),
    references: Type.Optional(Type.Array(Type.Object({ handle: Type.String(), index: Type.Integer() }))),
  },
  { additionalProperties: true, description: 'Other fields are ignored' },
);

export const RecordBody = Type.Union([
  Type.Object(
    { handle: Type.Optional(Type.String()), values: Type.Array(HandleValue) },
    { additionalProperties: true, description: 'Other fields (a GET answer’s responseCode) are ignored' },
  ),
  Type.Array(HandleValue),
  HandleValue,
]);

export const HandleAnswer = Type.Object({
  responseCode: Type.Integer(),
  handle: Type.String(),
  values: Type.Optional(Type.Array(Type.Unknown())),
});

export const ResolveQuery = Type.Object({
  type: Type.Optional(Type.Array(Type.String(), { description: 'Repeatable; a trailing "." matches subtypes' })),
  index: Type.Optional(
    Type.Array(Type.Integer({ minimum: -UINT32_MAX, maximum: UINT32_MAX }), { description: 'Repeatable; OR-ed with type; 0 or negative matches no value' }),
  ),
  auth: Type.Optional(Type.Boolean({ description: 'Bypass every cache; `?auth` alone means true' })),
  publicOnly: Type.Optional(Type.Boolean({ description: 'Only values with publicRead, whatever the token allows' })),
  pretty: Type.Optional(Type.Union([Type.Boolean(), Type.Literal('')])),
});

export const WriteQuery = Type.Object({
  overwrite: Type.Optional(Type.Boolean({ default: true })),
  index: Type.Optional(Type.Array(Type.String(), { description: 'Add/replace (PUT) or remove (DELETE) only these indexes; "various" = all in the body' })),
  mintNewSuffix: Type.Optional(Type.Boolean()),
  reuseDeleted: Type.Optional(Type.Boolean({ description: 'PUT: re-register an identifier that was deleted (admin token only)' })),
});

export const ListQuery = Type.Object(
  {
    prefix: Type.String({ minLength: 1 }),
    page: Type.Optional(Type.Integer({ minimum: -INT32_MAX, maximum: INT32_MAX, description: '0-based; negative = all' })),
    pageSize: Type.Optional(Type.Integer({ minimum: -INT32_MAX, maximum: INT32_MAX, description: '0 = count only; absent or negative = all' })),
    cursor: Type.Optional(Type.String({ description: 'the `next` of the previous page: continues after it (instead of page=)' })),
  },
  { additionalProperties: false },
);

export const ListAnswer = Type.Object({
  responseCode: Type.Integer(),
  prefix: Type.String(),
  totalCount: Type.Integer(),
  handles: Type.Array(Type.String()),
  next: Type.Optional(Type.String({ description: 'cursor of the next page (absent on the last page); also in the Link header' })),
});

export const BatchBody = Type.Object({ handles: Type.Array(Type.String()) }, { additionalProperties: false });

export const Owner = Type.Object({ name: Type.String({ minLength: 1 }) }, { additionalProperties: true });

export const PrefixInfo = Type.Object({
  prefix: Type.String(),
  owner: Type.Record(Type.String(), Type.Unknown()),
  site: Type.Optional(Type.String()),
  status: Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('suspended')]),
  parent: Type.Union([Type.String(), Type.Null()]),
  homed: Type.Optional(Type.Boolean()),
  redirect: Type.Optional(Type.Boolean({ description: 'Short URLs under this prefix redirect (true) or show the page (false); absent: inherited' })),
});

const Redirect = Type.Boolean({ description: 'Short URLs under this prefix redirect to the first URL value (true) or show the page (false)' });

export const PrefixCreate = Type.Object({ prefix: Type.String(), owner: Owner, site: Type.Optional(Type.String()), redirect: Type.Optional(Redirect) });
export const PrefixPatch = Type.Object({
  owner: Type.Optional(Owner),
  site: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  redirect: Type.Optional(
    Type.Union([Redirect, Type.Null()], { description: 'null: inherit from the nearest ancestor prefix that sets it, else face.redirect' }),
  ),
  status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('suspended')])),
});

export const TokenCreate = Type.Object({
  role: Type.Union([Type.Literal('admin'), Type.Literal('registrar'), Type.Literal('auditor'), Type.Literal('node')]),
  prefixes: Type.Optional(Type.Array(Type.String())),
  label: Type.Optional(Type.String()),
});

export const TokenInfo = Type.Object({
  id: Type.String(),
  role: Type.String(),
  prefixes: Type.Array(Type.String()),
  label: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
});

export const TokenCreated = Type.Object({
  id: Type.String(),
  role: Type.String(),
  prefixes: Type.Array(Type.String()),
  secret: Type.String({ description: 'Shown only in this answer' }),
});

export const QUERY_INT_MAX = { INT32_MAX, SEQ_MAX };

export const bearer = [{ bearer: [] as string[] }];

export const EventBody = Type.Union([
  Type.Object({
    type: Type.Literal('aggregation'),
    action: Type.Union([Type.Literal('ADD'), Type.Literal('OBSERVE'), Type.Literal('DELETE')]),
    parent: Type.String({ examples: ['88.100.4/VIN-LCJ2026000001'] }),
    children: Type.Array(Type.String(), { description: 'DELETE with none unpacks every child' }),
    eventTime: Type.String({ format: 'date-time' }),
  }),
  Type.Object({
    type: Type.Literal('transformation'),
    inputs: Type.Array(Type.String()),
    outputs: Type.Array(Type.String()),
    eventTime: Type.String({ format: 'date-time' }),
    transformationID: Type.Optional(Type.String()),
  }),
]);

export const EventPosted = Type.Object({
  responseCode: Type.Integer(),
  eventId: Type.Integer(),
  recordTime: Type.String(),
  edgesOpened: Type.Integer(),
  edgesClosed: Type.Integer(),
  flags: Type.Array(Type.Object({ handle: Type.String(), location: Type.String() })),
  unmatched: Type.Optional(Type.Array(Type.String())),
});

export const LineageQuery = Type.Object(
  {
    direction: Type.Optional(Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('both')], { default: 'both' })),
    depth: Type.Optional(Type.Integer({ minimum: 1, maximum: INT32_MAX, description: 'Default lineage.defaultDepth (10), at most lineage.maxDepth (50)' })),
    asOf: Type.Optional(Type.String({ description: 'ISO-8601 time with a zone; edges valid then' })),
  },
  { additionalProperties: false },
);

export const LineageAnswer = Type.Object({
  root: Type.String(),
  // A node outside a scoped reader's prefixes is {opaque, id, depth}; an edge between two such is {from, to, opaque}.
  nodes: Type.Array(
    Type.Object({
      handle: Type.Optional(Type.String()),
      opaque: Type.Optional(Type.Boolean()),
      id: Type.Optional(Type.String()),
      depth: Type.Integer(),
      location: Type.Optional(Type.String()),
    }),
  ),
  edges: Type.Array(
    Type.Object({
      from: Type.String(),
      to: Type.String(),
      type: Type.Optional(Type.String()),
      since: Type.Optional(Type.String()),
      until: Type.Optional(Type.String()),
      eventId: Type.Optional(Type.Integer()),
      opaque: Type.Optional(Type.Boolean()),
    }),
  ),
  truncated: Type.Boolean(),
});

export const HistoryQuery = Type.Object(
  {
    asOf: Type.Optional(Type.String({ description: 'ISO-8601 time with a zone: the record as it was then' })),
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: SEQ_MAX, default: 0, description: 'Versions after this one' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: INT32_MAX, description: 'Default 100, at most limits.pageSizeMax' })),
  },
  { additionalProperties: false },
);

export const AuditQuery = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: SEQ_MAX, default: 0 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: INT32_MAX, description: 'Default 100, at most limits.pageSizeMax' })),
  },
  { additionalProperties: false },
);

export const AuditEntry = Type.Object({
  seq: Type.Integer(),
  at: Type.String(),
  actor: Type.String(),
  action: Type.String(),
  target: Type.String(),
  digest: Type.String(),
  rowsDigest: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  prevHash: Type.String(),
  hash: Type.String(),
});

export const AuditVerdict = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer(),
  firstBroken: Type.Optional(Type.Object({ seq: Type.Integer(), reason: Type.String() })),
});
