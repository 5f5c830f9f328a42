/**
 * The install step (scripts/addon-patch, run by `npm ci` as postinstall) left the patched addon in place:
 * node-llama-cpp loads it, its marker is there, the worker picks the top-k path, and a second run skips.
 * Skipped, loudly, only where the step itself reported that it could not build (no compiler, git or headers).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { describe, expect, inject, it } from 'vitest';
import { loadModel } from '../workers/model.js';

const VARIANT = `linux-${process.arch}`;
const BINS = path.resolve('node_modules/@node-llama-cpp', VARIANT, 'bins', VARIANT);
const STATUS = path.join(BINS, 'qwen-serve-addon.json');

interface Status {
  status: 'patched' | 'stock';
  reason?: string;
  patched?: string;
  stock?: string;
}

function readStatus(): Status {
  if (!fs.existsSync(STATUS)) {
    throw new Error(`${STATUS} is missing: the install step did not run (npm ci --ignore-scripts?). Run \`npm run patch-addon\`.`);
  }
  return JSON.parse(fs.readFileSync(STATUS, 'utf8')) as Status;
}

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const supported = process.platform === 'linux' && fs.existsSync(BINS);
const status = supported ? readStatus() : undefined;
const couldNotBuild = status?.status === 'stock';
if (!supported) console.warn(`\n*** addon-patch tests SKIPPED: no prebuilt ${VARIANT} CPU variant on this platform ***\n`);
if (couldNotBuild) {
  console.warn(
    `\n*** addon-patch tests SKIPPED: the install step kept the stock addon: ${status.reason} ***\n` +
      '*** top_logprobs take the slow path here; install g++ and git, then `npm run patch-addon` ***\n',
  );
}

describe.skipIf(!supported || couldNotBuild)('the patched node-llama-cpp addon', () => {
  it('is installed, with the original kept beside it', () => {
    expect(status!.status).toBe('patched');
    expect(sha256(path.join(BINS, 'llama-addon.node'))).toBe(status!.patched);
    expect(sha256(path.join(BINS, 'llama-addon.stock.node'))).toBe(status!.stock);
    expect(status!.patched).not.toBe(status!.stock);
  });

  it('is what node-llama-cpp loads for the CPU, marker included, and what the worker uses', async () => {
    const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1, logLevel: LlamaLogLevel.error });
    try {
      expect((llama as unknown as { _bindings: { qwenServePatch?: unknown } })._bindings.qwenServePatch).toBe(1);
    } finally {
      await llama.dispose();
    }
    const loaded = await loadModel({
      modelPath: inject('tinyModel'),
      modelId: 'tiny',
      channel: 'test',
      timeBuckets: [],
      faults: false,
      threads: 1,
      sequences: 1,
      contextSize: 64,
      batchSize: 16,
      gpu: 'off',
      gpuLayers: 0,
      grammarCacheSize: 0,
    });
    try {
      expect(loaded.kind === 'generate' && loaded.topLogprobs).toBe('patched-top-k');
    } finally {
      if (loaded.kind === 'generate') await loaded.context.dispose();
      await loaded.model.dispose();
    }
  });

  it('is not rebuilt by a second run of the install step', () => {
    const started = performance.now();
    const r = spawnSync(process.execPath, ['scripts/addon-patch/install.mjs'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('already patched, nothing to do');
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe("node-llama-cpp's own postinstall", () => {
  // It test-loads the prebuilt binaries and, where none loads, downloads llama.cpp and builds it with cmake into
  // a local build that getLlama then prefers to the (patched) prebuilt, even with build: 'never'. The server
  // never builds; the prebuilt it loads is the one the install step patches. So the script is off: denied in
  // allowScripts (npm 11, quietly) and configured to skip where an older npm runs it anyway.
  const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as {
    allowScripts?: Record<string, boolean>;
    config?: Record<string, string>;
  };

  it('is denied by allowScripts and skips itself by the package configuration', () => {
    expect(pkg.allowScripts).toEqual({ 'node-llama-cpp': false });
    expect(pkg.config?.nodeLlamaCppPostinstall).toBe('skip');
    const script = JSON.parse(fs.readFileSync('node_modules/node-llama-cpp/package.json', 'utf8')).scripts.postinstall as string;
    expect(script).toBe('node ./dist/cli/cli.js postinstall');
    // As npm (any version) runs it: from the package's folder, with npm_package_json naming the project.
    const env: NodeJS.ProcessEnv = { ...process.env, npm_package_json: path.resolve('package.json') };
    delete env.NODE_LLAMA_CPP_POSTINSTALL;
    delete env.npm_config_node_llama_cpp_postinstall;
    const run = spawnSync(process.execPath, ['./dist/cli/cli.js', 'postinstall'], {
      cwd: 'node_modules/node-llama-cpp',
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout + run.stderr).toContain("Skipping node-llama-cpp postinstall due to a 'skip' configuration");
  });
});
