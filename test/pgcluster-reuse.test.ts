/**
 * createPgCluster({ reuse: true }): a cluster stopped (not destroyed) starts again on its data
 * directory, on a new port, with its databases; a server still running there is stopped first.
 * bench/pg.ts (pg-scale) keeps its 10M-record fixture this way.
 */
import t from 'tap';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgCluster } from '../src/cli/pgcluster.js';
import { pgMissing } from './pg.js';

const missing = pgMissing();
if (missing !== undefined) {
  if (process.env.CI) t.fail(`PostgreSQL is required under CI: ${missing}`);
  else void t.skip(`PostgreSQL cluster tests skipped: ${missing}`, () => undefined);
} else {
  // Not tempDir: createPgCluster opens the root it is given to the `postgres` user, not its parents. destroy() removes it.
  const newRoot = () => mkdtempSync(join(tmpdir(), 'idnode-pg-reuse-'));

  t.test('a stopped cluster starts again on its data directory with its data; a running one is stopped first', async (t) => {
    const root = newRoot();
    const first = await createPgCluster({ root, fast: true });
    t.teardown(() => first.destroy());
    await first.primary.sql('CREATE DATABASE kept');
    await first.primary.sql("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('from the first start')", 'kept');
    await first.primary.stop('fast');
    t.notOk(existsSync(join(root, 'primary', 'postmaster.pid')), 'stopped');

    const second = await createPgCluster({ root, fast: true, reuse: true });
    t.equal(second.primary.dir, first.primary.dir, 'the same data directory');
    t.equal((await second.primary.sql('SELECT v FROM marker', 'kept')).trim(), 'from the first start', 'its data survived');
    t.match(await second.primary.sql('SHOW port'), String(second.primary.port), 'listening on the port it was given');

    // As after an interrupted bench run: the server still runs when the next one starts.
    const third = await createPgCluster({ root, fast: true, reuse: true });
    t.equal((await third.primary.sql('SELECT v FROM marker', 'kept')).trim(), 'from the first start');
    t.match(await third.primary.sql('SHOW port'), String(third.primary.port));
    await third.primary.stop('fast');
  });

  t.test('reuse on an empty root runs initdb as without it', async (t) => {
    const root = newRoot();
    const c = await createPgCluster({ root, fast: true, reuse: true });
    t.teardown(() => c.destroy());
    t.equal((await c.primary.sql('SELECT 1')).trim(), '1');
  });
}
