/**
 * The idnode command as a function: `main(argv, io)` resolves to an exit code and has no
 * side effect on import; bin.ts is the executable that calls it.
 */
import cluster, { type Worker } from 'node:cluster';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, renderConfigHelp, type Config } from '../config.js';
import { isIdnError } from '../errors.js';
import { createNode, openConfiguredStore, openRegistry } from '../main.js';
import { SEEDS_DIR } from '../paths.js';
import { seedIfEmpty } from '../registry/seed.js';
import { openStore, type Store } from '../store/index.js';
import type { VerifyProgress } from '../store/types.js';
import { runDemo, runPgDemo } from './demo.js';
import { exportCommand, importFile, restoreCommand } from './transfer.js';

const HELP = `idnode — industrial-internet identifier resolution node

Usage:
  idnode serve [--config FILE] [--workers N]
                                        run a node (N processes sharing the port and the
                                        SQLite file; default config key workers = 1);
                                        without --config: the embedded default
                                        (secondary node for 88.100 on 127.0.0.1:8000,
                                        data/idnode.db, seeded from seeds/ on first start)
  idnode init [--config FILE]           create an admin token and print its secret once
  idnode token create --role ROLE [--prefix P]... [--label TEXT] [--config FILE]
  idnode token list [--config FILE]
  idnode token revoke ID [--config FILE]
  idnode prefix add PREFIX --owner NAME [--site URL] [--config FILE]
  idnode prefix list [--config FILE]
  idnode import FILE --prefix P [--format ndjson|csv] [--template VERSION] [--overwrite false] [--config FILE]
                                        bulk registration into the database; NDJSON lines
                                        {"handle","values"} or CSV (header: handle, template
                                        item names or INDEX:TYPE); progress on stderr
  idnode export --out DIR [--db FILE | --config FILE]
                                        escrow: one NDJSON file per table + manifest.json
  idnode restore --from DIR (--db NEW_FILE | --config FILE)
                                        rebuild a node from an export (checks the manifest)
                                        into a new SQLite file, or into the configured
                                        PostgreSQL database (which must be empty)
  idnode demo [--base-port N] [--dir DIR]
                                        a three-tier hierarchy on this machine: top-level T
                                        (:N), secondary nodes A (:N+1, seeded) and B (:N+2),
                                        enterprise node E (:N+9); default N 8100, DIR data/demo
  idnode demo --postgres [--base-port N] [--dir DIR]
                                        two nodes (:N, :N+1) over a PostgreSQL primary and a
                                        synchronous standby started in a temporary directory
                                        (needs PostgreSQL's server binaries installed)
  idnode audit verify [--db FILE | --config FILE]
                                        check the audit chain and every audited table offline
                                        (read-only; works while a node runs; progress on a
                                        terminal's stderr); exit 0 intact, 1 broken
  idnode --help

${renderConfigHelp()}
`;

/** Where the command writes and what it reads of its environment (tests pass their own). */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  /** stderr is a terminal: import progress redraws one line. */
  isTTY: boolean;
}

/** `serve` resolves to this: the process keeps running and its signal handlers end it. */
export const SERVING = -1;

export function processIo(): CliIo {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    env: process.env,
    isTTY: process.stderr.isTTY === true,
  };
}

const ADMIN_COMMANDS = new Set(['init', 'token create', 'token list', 'token revoke', 'prefix add', 'prefix list']);

/** Prepares the database once (migrations, first admin token, seed), then runs N workers. */
async function servePrimary(config: Config, embedded: boolean, io: CliIo): Promise<void> {
  const out = (line: string) => io.stdout(`${line}\n`);
  const reg = await openRegistry(config);
  let firstSecret: string | undefined;
  try {
    if (io.env.IDNODE_ADMIN_TOKEN) await reg.tokens.bootstrapAdmin(io.env.IDNODE_ADMIN_TOKEN);
    if (config.seed) await seedIfEmpty(reg, config.seedDir === '' ? SEEDS_DIR : config.seedDir);
    if (embedded && (await reg.store.activeAdminCount()) === 0) firstSecret = (await reg.tokens.create({ role: 'admin', label: 'first start' }, 'cli')).secret;
  } finally {
    reg.changes.stop();
    await reg.store.close();
  }
  let closing = false;
  const workers = new Set<Worker>();
  const fork = () => {
    const w = cluster.fork();
    workers.add(w);
    w.on('exit', (code, signal) => {
      workers.delete(w);
      if (closing) return;
      process.stderr.write(`idnode: worker ${w.id} exited (${signal ?? code}); starting another\n`);
      fork();
    });
    return w;
  };
  const ready = Array.from({ length: config.workers }, () => {
    const w = fork();
    return new Promise<string>((resolve) =>
      w.once('listening', (a) => resolve(`http://${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${a.port}`)),
    );
  });
  const urls = await Promise.all(ready);
  out(`idnode listening on ${urls[0]} (db ${config.db}, homed ${config.homed.join(', ')}, ${config.workers} workers)`);
  if (firstSecret !== undefined) out(`admin token (shown once, keep it): ${firstSecret}`);
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    out(`${signal}: shutting down ${workers.size} workers`);
    const timer = setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 1000);
    timer.unref();
    for (const w of workers) w.process.kill('SIGTERM');
    cluster.on('exit', () => {
      if ([...workers].every((w) => w.isDead())) {
        out(`${signal}: stopped cleanly`);
        process.exit(0);
      }
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function serve(config: Config, embedded: boolean, io: CliIo): Promise<void> {
  if (config.workers > 1 && cluster.isPrimary) return servePrimary(config, embedded, io);
  const out = (line: string) => io.stdout(`${line}\n`);
  const worker = cluster.isWorker ? cluster.worker! : undefined;
  const node = await createNode(config, {
    ...(io.env.IDNODE_ADMIN_TOKEN ? { adminToken: io.env.IDNODE_ADMIN_TOKEN } : {}),
    logger: { level: config.logLevel },
    // Each worker follows the change feed itself; one of them sends the sync reports.
    ...(worker ? { runSync: worker.id === 1 } : {}),
  });
  if (worker) {
    await node.listen();
    process.on(
      'SIGTERM',
      () =>
        void node.close().then(
          () => process.exit(0),
          () => process.exit(1),
        ),
    );
    return;
  }
  let firstSecret: string | undefined;
  if (embedded && (await node.store.activeAdminCount()) === 0) firstSecret = (await node.tokens.create({ role: 'admin', label: 'first start' }, 'cli')).secret;
  const url = await node.listen();
  out(`idnode listening on ${url} (db ${config.db}, homed ${config.homed.join(', ')})`);
  if (firstSecret !== undefined) out(`admin token (shown once, keep it): ${firstSecret}`);
  else if ((await node.store.activeAdminCount()) === 0) out('no admin token yet: run `idnode init` (or start with IDNODE_ADMIN_TOKEN) to create one');
  if (embedded) {
    const sample = (await node.records.list('88.100.1', 0, 1)).handles[0];
    if (sample !== undefined) {
      out('try:');
      out(`  curl ${url}/api/handles/${sample}`);
      out(`  curl '${url}/api/handles/${sample}?type=batch&pretty'`);
      const vehicle = (await node.records.list('88.100.4', 0, 1)).handles[0];
      const token = firstSecret ?? '<admin token>';
      if (vehicle !== undefined) out(`  curl -H "Authorization: Bearer ${token}" '${url}/api/lineage/${vehicle}?direction=down'`);
      else out(`  curl -H "Authorization: Bearer ${token}" '${url}/api/handles?prefix=88.100.1&pageSize=5'`);
      out(`  open ${url}/${sample} in a browser (its page; the URL a QR label holds)`);
    }
  }
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    out(`${signal}: shutting down (finishing requests in flight, at most ${config.shutdownTimeoutMs} ms)`);
    // Past the limit, stop anyway: SQLite's WAL keeps every committed write; an open bulk
    // chunk is rolled back and its client sees the stream end without a summary.
    const timer = setTimeout(() => {
      io.stderr(`idnode: shutdown took longer than ${config.shutdownTimeoutMs} ms (config shutdownTimeoutMs); exiting\n`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    node.close().then(
      () => {
        out(`${signal}: stopped cleanly`);
        process.exit(0);
      },
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * The database of `--db FILE` (SQLite), else the configured one, opened read-only: no
 * migration, no lock a running node would wait on.
 */
async function openReadonly(db: string | undefined, configFile: string | undefined, env: NodeJS.ProcessEnv): Promise<Store> {
  const config = db === undefined ? loadConfig({ ...(configFile !== undefined ? { file: configFile } : {}), env }) : undefined;
  if (config !== undefined && config.store.engine === 'postgres') return openConfiguredStore(config, { readonly: true });
  const path = db ?? config!.db;
  if (!existsSync(path)) throw new ConfigError(`no database at ${path}; pass --db FILE`);
  return openStore(path, { readonly: true });
}

/** Opens the database read-only and walks the chain. */
async function auditVerify(db: string | undefined, configFile: string | undefined, io: CliIo): Promise<number> {
  const store = await openReadonly(db, configFile, io.env);
  try {
    // On a terminal, one redrawn line says how far a long walk is (stdout keeps the verdict alone).
    const onProgress = io.isTTY
      ? (p: VerifyProgress) => io.stderr(`\r${p.phase === 'chain' ? `entries ${p.checked}/${p.total}` : `entries ${p.total}/${p.total}, rows ${p.rows}`}`)
      : undefined;
    const verdict = await store.verifyAudit(onProgress === undefined ? {} : { onProgress });
    if (onProgress !== undefined) io.stderr('\n');
    io.stdout(`${JSON.stringify(verdict)}\n`);
    return verdict.ok ? 0 : 1;
  } finally {
    await store.close();
  }
}

/**
 * Runs one idnode command; resolves to its exit code (0 done, 1 failed, 2 usage or config
 * error), or to SERVING for `serve`, whose process runs until a signal.
 */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof ConfigError || isIdnError(err) || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`idnode: ${(err as Error).message}\n`);
      return 2;
    }
    io.stderr(`idnode: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const out = (line: string) => io.stdout(`${line}\n`);
  const fileConfig = (file: string | undefined) => ({ ...(file !== undefined ? { file } : {}), env: io.env });
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      role: { type: 'string' },
      prefix: { type: 'string', multiple: true },
      label: { type: 'string' },
      owner: { type: 'string' },
      site: { type: 'string' },
      db: { type: 'string' },
      'base-port': { type: 'string' },
      postgres: { type: 'boolean' },
      workers: { type: 'string' },
      format: { type: 'string' },
      template: { type: 'string' },
      overwrite: { type: 'string' },
      out: { type: 'string' },
      from: { type: 'string' },
      dir: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, sub, arg] = positionals;
  if (values.help || command === undefined || command === 'help') {
    out(HELP);
    return values.help || command === 'help' ? 0 : 2;
  }
  if (command === 'audit' && sub === 'verify') return auditVerify(values.db, values.config, io);
  const output = { out, err: (text: string) => io.stderr(text), tty: io.isTTY };
  if (command === 'restore')
    return restoreCommand(
      values.from,
      values.db,
      values.db === undefined && values.config !== undefined ? loadConfig(fileConfig(values.config)) : undefined,
      output,
    );
  if (command === 'export') {
    if (values.out === undefined) throw new ConfigError('usage: idnode export --out DIR [--db FILE | --config FILE]');
    return exportCommand(await openReadonly(values.db, values.config, io.env), values.out, output);
  }
  if (command === 'import') {
    if (sub === undefined) throw new ConfigError('usage: idnode import FILE --prefix PREFIX');
    if (values.overwrite !== undefined && values.overwrite !== 'true' && values.overwrite !== 'false')
      throw new ConfigError('--overwrite must be true or false');
    const config = loadConfig(fileConfig(values.config));
    return importFile(
      config,
      sub,
      { prefix: values.prefix?.[0], format: values.format, template: values.template, overwrite: values.overwrite !== 'false' },
      output,
    );
  }
  if (command === 'demo') {
    const basePort = Number(values['base-port'] ?? '8100');
    if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65526) throw new ConfigError('--base-port must be a port number from 1 to 65526');
    return (values.postgres ? runPgDemo : runDemo)({ basePort, dir: values.dir ?? 'data/demo', out });
  }
  const key = `${command} ${sub ?? ''}`.trim();
  // An unknown command touches no database (the default one may not be this directory's).
  if (command !== 'serve' && !ADMIN_COMMANDS.has(key)) {
    io.stderr(`unknown command "${positionals.join(' ')}"\n\n${HELP}`);
    return 2;
  }
  const embedded = command === 'serve' && values.config === undefined;
  const overrides: Record<string, unknown> = embedded ? { seed: true } : {};
  if (values.workers !== undefined) {
    if (!/^\d+$/.test(values.workers)) throw new ConfigError('--workers must be a whole number of processes, such as 2');
    overrides.workers = Number(values.workers);
  }
  const config = loadConfig({ ...fileConfig(values.config), overrides });
  if (command === 'serve') {
    await serve(config, embedded, io);
    return SERVING;
  }
  const reg = await openRegistry(config);
  try {
    switch (key) {
      case 'init': {
        const t = await reg.tokens.create({ role: 'admin', label: 'idnode init' }, 'cli');
        out(`admin token ${t.id} created; secret (shown once): ${t.secret}`);
        return 0;
      }
      case 'token create': {
        const t = await reg.tokens.create({ role: values.role, prefixes: values.prefix ?? [], ...(values.label ? { label: values.label } : {}) }, 'cli');
        out(JSON.stringify({ id: t.id, role: t.role, prefixes: t.prefixes, secret: t.secret }));
        return 0;
      }
      case 'token list':
        for (const t of await reg.tokens.list()) out(JSON.stringify(t));
        return 0;
      case 'token revoke':
        if (arg === undefined) throw new ConfigError('usage: idnode token revoke ID');
        out(JSON.stringify(await reg.tokens.revoke(arg, 'cli')));
        return 0;
      case 'prefix add':
        if (arg === undefined || values.owner === undefined) throw new ConfigError('usage: idnode prefix add PREFIX --owner NAME [--site URL]');
        out(JSON.stringify(await reg.prefixes.create({ prefix: arg, owner: { name: values.owner }, ...(values.site ? { site: values.site } : {}) }, 'cli')));
        return 0;
      case 'prefix list':
        for (const p of await reg.prefixes.list()) out(JSON.stringify(p));
        return 0;
      /* c8 ignore next 2 */
      default:
        throw new Error(`command "${key}" is listed but not handled`);
    }
  } finally {
    reg.changes.stop();
    await reg.store.close();
  }
}
