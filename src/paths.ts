/** Where idnode's own files live (schema/, seeds/), whether it runs from src/ (tests) or dist/src/. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schema'))) return dir;
    const up = dirname(dir);
    /* c8 ignore next */
    if (up === dir) throw new Error(`idnode's package root (with schema/) was not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const PACKAGE_ROOT = findPackageRoot();
export const SCHEMA_DIR = join(PACKAGE_ROOT, 'schema');
export const SEEDS_DIR = join(PACKAGE_ROOT, 'seeds');
