/**
 * postinstall: replaces node-llama-cpp's prebuilt CPU addon with one built from the same sources plus
 * patches/node-llama-cpp-3.21.1/sample-top-k.patch, which lets sampleToken return only the k most likely
 * candidates. The stock addon sorts and copies all 151,936 candidates of Qwen2.5's vocabulary for every token
 * of a `top_logprobs` request (~29 ms a token on 2 cores), which halved the decode speed of a whole batch.
 *
 * Never fails the install: without a compiler, git or Node's headers, on another node-llama-cpp version or
 * platform, or when the rebuilt addon fails its check, it prints one warning line and the stock addon stays
 * (the server then takes the old, slow path for top_logprobs). Skips in milliseconds when already patched.
 *
 *   node scripts/addon-patch/install.mjs            patch (or skip when already patched with this patch)
 *   node scripts/addon-patch/install.mjs --force    rebuild even when already patched
 *   node scripts/addon-patch/install.mjs --restore  put the stock addon back
 * QWEN_SERVE_SKIP_ADDON_PATCH=1 skips the step.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AddonBuildError, buildPatchedAddon } from './build.mjs';
import { findToolchain, MissingToolError } from './toolchain.mjs';
import { ADDON, locate, readStatus, sha256, STATUS_FILE, STOCK_ADDON, swapIn, UnsupportedInstallError, writeStatus } from './variant.mjs';
import { AddonCheckError, verifyAddon } from './verify.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PATCH = path.join(ROOT, 'patches', 'node-llama-cpp-3.21.1', 'sample-top-k.patch');
const SLOW_PATH = 'the stock addon stays (top_logprobs > 0 takes the slow full-sort path)';

const log = (msg) => console.log(`qwen-serve addon patch: ${msg}`);
const warn = (msg) => console.warn(`qwen-serve addon patch: WARNING: ${msg}`);
const firstLine = (text) => text.split('\n')[0];

async function main(args) {
  if (process.env.QWEN_SERVE_SKIP_ADDON_PATCH) return log(`skipped (QWEN_SERVE_SKIP_ADDON_PATCH is set); ${SLOW_PATH}`);
  let install;
  try {
    install = locate(ROOT);
  } catch (err) {
    if (err instanceof UnsupportedInstallError) return warn(`${err.message}; ${SLOW_PATH}`);
    throw err;
  }
  const { binsDir, variant } = install;
  const addon = path.join(binsDir, ADDON);
  const stock = path.join(binsDir, STOCK_ADDON);
  const status = readStatus(binsDir);
  const patch = sha256(PATCH);
  const patched = status?.status === 'patched' && status.patched === sha256(addon);

  if (args.includes('--restore')) {
    if (patched && fs.existsSync(stock)) swapIn(binsDir, stock);
    writeStatus(binsDir, { status: 'stock', reason: 'restored with --restore', patch });
    return log(`${variant}: the stock addon is back in place`);
  }
  if (patched && status.patch === patch && !args.includes('--force')) return log(`${variant}: already patched, nothing to do`);

  // Whatever is installed now is node-llama-cpp's own file unless it is ours: keep it.
  if (!patched) fs.copyFileSync(addon, stock);
  const started = performance.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-addon-'));
  try {
    const toolchain = findToolchain(install.nodeLlamaCpp);
    log(
      `building ${variant}'s llama-addon.node with ${path.relative(ROOT, PATCH)} (${toolchain.cxx.join(' ')}; about 30 s on 2 idle cores)`,
    );
    const built = await buildPatchedAddon({ install, toolchain, patchFile: PATCH, tmp });
    await verifyAddon({ root: ROOT, binsDir, built });
    const seconds = Number(((performance.now() - started) / 1000).toFixed(1));
    // The status first: if the swap were interrupted, the next run would see a stock addon that the status
    // does not vouch for, and rebuild, instead of taking a patched file for the original.
    writeStatus(binsDir, { status: 'patched', variant, patch, stock: sha256(stock), patched: sha256(built), seconds });
    swapIn(binsDir, built);
    log(`${variant}: patched and checked in ${seconds} s; top_logprobs sample the top k only (original kept as ${STOCK_ADDON})`);
  } catch (err) {
    if (!(err instanceof MissingToolError || err instanceof AddonBuildError || err instanceof AddonCheckError)) throw err;
    if (patched && status.patch === patch)
      return warn(`rebuild failed (${firstLine(err.message)}); the patched addon already installed stays`);
    if (patched) swapIn(binsDir, stock); // an older patch must not stay next to a newer one's JavaScript
    writeStatus(binsDir, { status: 'stock', code: err.code, reason: err.message, patch });
    warn(`could not build the patched addon: ${firstLine(err.message)}; ${SLOW_PATH} (details: ${path.join(binsDir, STATUS_FILE)})`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  // A bug here must not fail `npm ci` either; the addon is swapped in one rename, so it is whole either way.
  warn(`unexpected error (${err instanceof Error ? err.stack : String(err)}); the installed addon was left as it was`);
}
