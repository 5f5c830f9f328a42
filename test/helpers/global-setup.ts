/**
 * Writes the tiny scripted model once per test run and hands its path to every test file.
 * The tests run the compiled server (dist/), which `npm test` builds first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { writeDemoModel } from '../../src/demo-model/demo-model.js';

declare module 'vitest' {
  export interface ProvidedContext {
    tinyModel: string;
    modelsDir: string;
  }
}

/** Sources under `dirs` whose compiled file in dist/ is missing or older: the servers would run stale code. */
export function staleOutputs(dirs: string[], root = '.'): string[] {
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const out = path.join(root, 'dist', path.relative(root, file).replace(/\.ts$/, '.js'));
        if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(file).mtimeMs) stale.push(path.relative(root, file));
      }
    }
  };
  for (const d of dirs) walk(path.join(root, d));
  return stale;
}

export default async function setup(project: TestProject): Promise<() => void> {
  if (!fs.existsSync(path.resolve('dist/src/cli.js'))) {
    throw new Error('dist/ is missing: run `npm test` (it builds first) or `npm run build`.');
  }
  // The integration tests start the compiled server: after an edit, `vitest run` alone would test old code.
  const stale = staleOutputs(['src', 'workers']);
  if (stale.length > 0) {
    throw new Error(
      `dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ' …' : ''}: run \`npm test\` (it builds first) or \`npm run build\`.`,
    );
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-test-'));
  const tinyModel = path.join(dir, 'tiny.gguf');
  await writeDemoModel({ size: 'tiny', outPath: tinyModel });
  project.provide('tinyModel', tinyModel);
  project.provide('modelsDir', dir);
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
