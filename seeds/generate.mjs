// Regenerates seeds/ deterministically: node seeds/generate.mjs
// Three auto-parts enterprises under 88.100 (a thousand parts each, plus their production
// batches), a vehicle maker, and events that build a five-level bill of materials:
// vehicle -> assemblies (engine, brake assemblies) -> parts (bearings, calipers)
//         -> production batches -> raw-material lots (foreign: a steel mill under 88.200).
import { writeFileSync } from 'node:fs';

let seed = 20261125;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const pick = (list) => list[Math.floor(rand() * list.length)];
const pad = (n, w) => String(n).padStart(w, '0');
const day = (i) => new Date(Date.UTC(2026, 0, 5) + i * 86400000).toISOString().slice(0, 10);

const enterprises = [
  {
    prefix: '88.100.1',
    name: 'Huaxia Engine Works',
    site: 'https://trace.huaxia-engine.example',
    kind: 'ENGINE',
    models: ['HX-1.5T', 'HX-2.0T', 'HX-2.4NA'],
    product: 'Gasoline engine',
    count: 1000,
  },
  {
    prefix: '88.100.2',
    name: 'Jinghe Brake Systems',
    site: 'https://id.jinghe-brake.example',
    kind: 'CALIPER',
    models: ['JH-C320', 'JH-C350', 'JH-C380R'],
    product: 'Brake caliper',
    count: 1000,
  },
  {
    prefix: '88.100.3',
    name: 'Donghai Precision Bearings',
    site: 'https://qr.donghai-bearing.example',
    kind: 'BEARING',
    models: ['DH-6205', 'DH-6306', 'DH-32210'],
    product: 'Ball bearing',
    count: 1000,
  },
];
const maker = { prefix: '88.100.4', name: 'Changjiang Motors', site: 'https://vin.changjiang-motors.example' };
const VEHICLES = 100;
const ASSEMBLIES = 2 * VEHICLES;
const lot = (kind, b) => `88.200.15/${kind === 'BEARING' ? 'ALLOY' : 'STEEL'}-LOT-2026-${pad(b, 4)}`;
const record = (handle, values) => lines.push(JSON.stringify({ handle, values }));
const str = (index, type, value) => ({ index, type, data: { format: 'string', value } });

const lines = [];
for (const e of enterprises) {
  for (let i = 1; i <= e.count; i++) {
    const serial = `${e.kind}-2026-${pad(i, 6)}`;
    const handle = `${e.prefix}/${serial}`;
    const batchNo = Math.ceil(i / 50);
    const produced = day(Math.floor((i - 1) / 10));
    const model = pick(e.models);
    const values = [
      { index: 1, type: 'URL', data: { format: 'string', value: `${e.site}/p/${serial}` } },
      { index: 2, type: 'name', data: { format: 'string', value: `${e.product} ${model}` } },
      { index: 3, type: 'model', data: { format: 'string', value: model } },
      { index: 4, type: 'batch', data: { format: 'string', value: `${e.kind}-B2026-${pad(batchNo, 4)}` } },
      { index: 5, type: 'productionDate', data: { format: 'string', value: produced } },
      { index: 6, type: 'manufacturer', data: { format: 'string', value: e.name } },
      { index: 7, type: 'EMAIL', data: { format: 'string', value: `quality@${new URL(e.site).hostname.split('.').slice(1).join('.')}` } },
    ];
    if (i % 3 === 0)
      values.push({ index: 20, type: 'qcInspector', data: { format: 'string', value: `QC-${pad(Math.floor(rand() * 90) + 10, 3)}` }, permissions: '1100' });
    if (i % 5 === 0)
      values.push({ index: 21, type: 'unitCost', data: { format: 'string', value: `${(rand() * 900 + 100).toFixed(2)} CNY` }, permissions: '1100', ttl: 3600 });
    lines.push(JSON.stringify({ handle, values }));
  }
  for (let b = 1; b <= e.count / 50; b++) {
    const batch = `${e.prefix}/${e.kind}-B2026-${pad(b, 4)}`;
    record(batch, [
      str(2, 'name', `${e.product} production batch ${b}`),
      str(5, 'productionDate', day((b - 1) * 5)),
      str(6, 'manufacturer', e.name),
      str(8, 'rawMaterialLot', lot(e.kind, b)),
      str(9, 'quantity', '50'),
    ]);
  }
}
for (let i = 1; i <= ASSEMBLIES; i++)
  record(`88.100.2/BRAKE-ASSY-2026-${pad(i, 6)}`, [
    str(1, 'URL', `https://id.jinghe-brake.example/a/BRAKE-ASSY-2026-${pad(i, 6)}`),
    str(2, 'name', `${i % 2 === 1 ? 'Front' : 'Rear'} axle brake assembly`),
    str(5, 'productionDate', day(100 + Math.floor(i / 10))),
    str(6, 'manufacturer', 'Jinghe Brake Systems'),
  ]);
for (let i = 1; i <= VEHICLES; i++)
  record(`${maker.prefix}/VIN-LCJ26S7${pad(i, 7)}`, [
    str(1, 'URL', `${maker.site}/v/LCJ26S7${pad(i, 7)}`),
    str(2, 'name', 'Passenger car CJ-S7'),
    str(3, 'model', pick(['CJ-S7 1.5T', 'CJ-S7 2.0T'])),
    str(5, 'productionDate', day(120 + Math.floor(i / 5))),
    str(6, 'manufacturer', maker.name),
  ]);

// Events, in the order things happened.
const events = [];
const at = (d, h = 8) => `${day(d)}T${pad(h, 2)}:00:00+08:00`;
for (const e of enterprises)
  for (let b = 1; b <= e.count / 50; b++) {
    const batch = `${e.prefix}/${e.kind}-B2026-${pad(b, 4)}`;
    events.push({ type: 'transformation', inputs: [lot(e.kind, b)], outputs: [batch], eventTime: at((b - 1) * 5, 7), bizStep: 'commissioning' });
    const parts = Array.from({ length: 50 }, (_, k) => `${e.prefix}/${e.kind}-2026-${pad((b - 1) * 50 + k + 1, 6)}`);
    events.push({ type: 'transformation', inputs: [batch], outputs: parts, eventTime: at((b - 1) * 5, 17), bizStep: 'assembling' });
  }
const part = (kind, n) => `88.100.${kind === 'ENGINE' ? 1 : kind === 'CALIPER' ? 2 : 3}/${kind}-2026-${pad(n, 6)}`;
for (let i = 1; i <= ASSEMBLIES; i++)
  events.push({
    type: 'aggregation',
    action: 'ADD',
    parent: `88.100.2/BRAKE-ASSY-2026-${pad(i, 6)}`,
    children: [part('CALIPER', 2 * i - 1), part('CALIPER', 2 * i)],
    eventTime: at(100 + Math.floor(i / 10)),
  });
for (let i = 1; i <= VEHICLES; i++)
  events.push({
    type: 'aggregation',
    action: 'ADD',
    parent: part('ENGINE', i),
    children: [part('BEARING', 2 * i - 1), part('BEARING', 2 * i)],
    eventTime: at(110 + Math.floor(i / 10)),
  });
for (let i = 1; i <= VEHICLES; i++)
  events.push({
    type: 'aggregation',
    action: 'ADD',
    parent: `${maker.prefix}/VIN-LCJ26S7${pad(i, 7)}`,
    children: [part('ENGINE', i), `88.100.2/BRAKE-ASSY-2026-${pad(2 * i - 1, 6)}`, `88.100.2/BRAKE-ASSY-2026-${pad(2 * i, 6)}`],
    eventTime: at(120 + Math.floor(i / 5), 15),
  });
writeFileSync(new URL('./events.ndjson', import.meta.url), events.map((e) => JSON.stringify(e)).join('\n') + '\n');
writeFileSync(new URL('./records.ndjson', import.meta.url), lines.join('\n') + '\n');
writeFileSync(
  new URL('./prefixes.json', import.meta.url),
  JSON.stringify(
    [...enterprises, maker].map((e) => ({ prefix: e.prefix, owner: { name: e.name, website: e.site } })),
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${lines.length} records, ${events.length} events`);
