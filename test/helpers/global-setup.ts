/**
 * Writes the tiny scripted model once per test run and hands its path to every test file.
 * The tests run the compiled server (dist/), which `npm test` builds first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { writeDemoModel } from '../../src/model/demo-model.js';

declare module 'vitest' {
  export interface ProvidedContext {
    tinyModel: string;
    modelsDir: string;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  if (!fs.existsSync(path.resolve('dist/src/cli.js'))) {
    throw new Error('dist/ is missing: run `npm test` (it builds first) or `npm run build`.');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-test-'));
  const tinyModel = path.join(dir, 'tiny.gguf');
  await writeDemoModel({ size: 'tiny', outPath: tinyModel });
  project.provide('tinyModel', tinyModel);
  project.provide('modelsDir', dir);
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
