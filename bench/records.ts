/** Generated records shared by the SQLite and PostgreSQL scenarios. */

/** A realistic record: seven values, one of them non-public (about 650 bytes of JSON). */
export function recordBody(n: number): string {
  const serial = `PUMP-2026-${String(n).padStart(8, '0')}`;
  return JSON.stringify({
    values: [
      { index: 1, type: 'URL', data: { format: 'string', value: `https://trace.bench-works.example/p/${serial}` } },
      { index: 2, type: 'name', data: { format: 'string', value: 'Water pump WP-220' } },
      { index: 3, type: 'model', data: { format: 'string', value: 'WP-220' } },
      { index: 4, type: 'batch', data: { format: 'string', value: `PUMP-B2026-${String(Math.ceil(n / 500)).padStart(5, '0')}` } },
      { index: 5, type: 'productionDate', data: { format: 'string', value: '2026-11-25' } },
      { index: 6, type: 'manufacturer', data: { format: 'string', value: 'Bench Works' } },
      { index: 20, type: 'unitCost', data: { format: 'string', value: '312.50 CNY' }, permissions: '1100' },
    ],
  });
}

export const TEMPLATE_ITEMS = [
  ['batchNo', 'batch', 'string'],
  ['model', 'model', 'string'],
  ['produced', 'productionDate', 'date'],
  ['line', 'productionLine', 'string'],
  ['inspector', 'inspector', 'string'],
  ['weight', 'weight', 'number'],
  ['manual', 'manual', 'url'],
  ['material', 'material', 'reference'],
].map(([name, idType, dataType], i) => ({ name: name!, idIndex: 2001 + i, idType: idType!, dataType: dataType!, required: i < 3 }));

/** One generated record: URL, the template version and its 8 items (about 700 bytes of JSON). */
export function bulkLine(i: number): string {
  const s = String(i).padStart(8, '0');
  return JSON.stringify({
    handle: `88.100.9/PUMP-${s}`,
    values: [
      { index: 1, type: 'URL', data: `https://trace.bench-works.example/p/PUMP-${s}` },
      { index: 1001, type: 'TEMPLATE', data: '1' },
      { index: 2001, type: 'batch', data: `B-${String(Math.ceil(i / 500)).padStart(6, '0')}` },
      { index: 2002, type: 'model', data: 'WP-220' },
      { index: 2003, type: 'productionDate', data: '2026-11-25' },
      { index: 2004, type: 'productionLine', data: 'Line 3, Suzhou plant' },
      { index: 2005, type: 'inspector', data: `QC-${i % 97}` },
      { index: 2006, type: 'weight', data: '2.35' },
      { index: 2007, type: 'manual', data: 'https://bench-works.example/manuals/WP-220.pdf' },
      { index: 2008, type: 'material', data: `88.200.15/STEEL-LOT-2026-${String(i % 300).padStart(4, '0')}` },
    ],
  });
}

/** A load generator's `next`: each request PUTs a new identifier under 88.100.9 with `recordBody` (register, pg-writes). */
export function newRecordPuts(): (req: { path: string; body?: string | Buffer }) => void {
  let serial = 0;
  return (req) => {
    serial++;
    req.path = `/api/handles/88.100.9/PUMP-2026-${String(serial).padStart(8, '0')}?overwrite=false`;
    req.body = recordBody(serial);
  };
}
