/** The repository stands alone: its documents point at nothing outside it. */
import { readFileSync } from 'node:fs';
import t from 'tap';

const DOCS = ['README.md', 'bench/README.md', 'docs/API.md'];

t.test('documents link nothing outside the repository', async (t) => {
  for (const file of DOCS) {
    const text = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
    t.notMatch(text, /\.\.\/shared|HANDLE-NOTES|SCALE\.md|FACE\.md|STYLE\.md/, `${file} names no file outside the repository`);
    // Relative markdown links must resolve inside the repository.
    for (const m of text.matchAll(/\]\((?!https?:|#)([^)\s]+)\)/g)) t.notOk(m[1]!.startsWith('..'), `${file} links ${m[1]} inside the repository`);
  }
});

t.test('README opens with the command that runs the node and the one that runs the tests', async (t) => {
  const head = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    .split('\n')
    .slice(0, 10)
    .join('\n');
  t.match(head, /npm ci && npm start/);
  t.match(head, /npm test/);
});
