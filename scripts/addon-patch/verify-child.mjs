/**
 * Runs in a child process (see verify.mjs): loads the candidate addon through node-llama-cpp itself, CPU only,
 * checks the patch marker, decodes a few tokens of a tiny generated model and compares the patched top-k
 * sampling with the stock full path on the same row. Prints one JSON line; exits non-zero on any mismatch.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeTinyModel } from './tiny-gguf.mjs';

const [root] = process.argv.slice(2);
const K = 5;
const TOLERANCE = 1e-5;

/** The top-k answer must be the first k of the full one: same probabilities in order, and each listed token
 * at its own probability in the full answer (ties may list other tokens of equal probability). */
function compare(label, full, top) {
  const [token, all, chosen] = full;
  const [topToken, pairs, topChosen] = top;
  const fail = (what) => {
    throw new Error(`${label}: ${what}`);
  };
  if (token !== topToken) fail(`sampled ${topToken} with top-k, ${token} with the full path`);
  if (!Array.isArray(pairs) || pairs.length !== 2 * Math.min(K, all.length / 2)) fail(`expected ${K} pairs, got ${JSON.stringify(pairs)}`);
  const byToken = new Map();
  for (let i = 0; i < all.length; i += 2) byToken.set(all[i], all[i + 1]);
  for (let i = 0; i < pairs.length; i += 2) {
    if (Math.abs(pairs[i + 1] - all[i + 1]) > TOLERANCE) fail(`rank ${i / 2}: p ${pairs[i + 1]} against ${all[i + 1]}`);
    if (Math.abs(byToken.get(pairs[i]) - pairs[i + 1]) > TOLERANCE)
      fail(`token ${pairs[i]}: p ${pairs[i + 1]} against ${byToken.get(pairs[i])}`);
  }
  if (Math.abs(topChosen - (chosen ?? byToken.get(token))) > TOLERANCE) fail(`sampled token's p ${topChosen} against ${chosen}`);
}

const require = createRequire(path.join(root, 'package.json'));
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(require.resolve('node-llama-cpp')).href);
const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 1, logLevel: LlamaLogLevel.error, progressLogs: false });
const bindings = llama._bindings;
if (bindings?.qwenServePatch !== 1) throw new Error('the loaded addon has no qwenServePatch marker');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-addon-check-'));
try {
  const modelPath = path.join(dir, 'tiny.gguf');
  writeTinyModel(modelPath);
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: 64, sequences: 1, threads: 1, batchSize: 16 });
  const ctx = context._ctx;
  ctx.initBatch(4);
  const [row] = ctx.addToBatch(0, 0, Uint32Array.of(72, 101, 108, 108), Uint32Array.of(3));
  await ctx.decodeBatch();
  // Greedy leaves the candidates unsorted (the partial sort runs); temperature with top_p sorts them.
  const configs = {
    greedy: { temperature: 0, minP: 0, topK: 0, topP: 1, seed: 1 },
    'temperature + top_p': { temperature: 1.5, minP: 0, topK: 0, topP: 0.95, seed: 7 },
  };
  for (const [label, config] of Object.entries(configs)) {
    // Two samplers with the same seed: the same RNG state, so they draw the same token.
    const [a, b] = [0, 1].map(() => {
      const s = new bindings.AddonSampler(model._model);
      s.applyConfig(config);
      return s;
    });
    compare(label, await ctx.sampleToken(row, a, true, false), await ctx.sampleToken(row, b, true, true, K));
    a.dispose();
    b.dispose();
  }
  await context.dispose();
  await model.dispose();
  console.log(JSON.stringify({ ok: true }));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
  await llama.dispose();
}
