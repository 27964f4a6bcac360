// Regenerates seeds/records.ndjson deterministically: node seeds/generate.mjs
// Three auto-parts enterprises under 88.100; about a thousand identifiers each.
import { writeFileSync } from 'node:fs';

let seed = 20261125;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = (list) => list[Math.floor(rand() * list.length)];
const pad = (n, w) => String(n).padStart(w, '0');
const day = (i) => new Date(Date.UTC(2026, 0, 5) + i * 86400000).toISOString().slice(0, 10);

const enterprises = [
  { prefix: '88.100.1', name: 'Huaxia Engine Works', site: 'https://trace.huaxia-engine.example', kind: 'ENGINE', models: ['HX-1.5T', 'HX-2.0T', 'HX-2.4NA'], product: 'Gasoline engine', count: 1000 },
  { prefix: '88.100.2', name: 'Jinghe Brake Systems', site: 'https://id.jinghe-brake.example', kind: 'CALIPER', models: ['JH-C320', 'JH-C350', 'JH-C380R'], product: 'Brake caliper', count: 1000 },
  { prefix: '88.100.3', name: 'Donghai Precision Bearings', site: 'https://qr.donghai-bearing.example', kind: 'BEARING', models: ['DH-6205', 'DH-6306', 'DH-32210'], product: 'Ball bearing', count: 1000 },
];

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
}
writeFileSync(new URL('./records.ndjson', import.meta.url), lines.join('\n') + '\n');
writeFileSync(
  new URL('./prefixes.json', import.meta.url),
  JSON.stringify(enterprises.map((e) => ({ prefix: e.prefix, owner: { name: e.name, website: e.site } })), null, 2) + '\n',
);
console.log(`wrote ${lines.length} records`);
