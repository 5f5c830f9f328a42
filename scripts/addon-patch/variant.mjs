/**
 * Where the addon lives and what state it is in. Only node-llama-cpp's prebuilt CPU variant of this platform
 * (e.g. @node-llama-cpp/linux-x64) is patched: the CUDA and Vulkan variants link libraries whose drivers a
 * build machine may not have, so a rebuilt binary could not be verified there; they keep the stock addon.
 *
 * Files next to the prebuilt `llama-addon.node` (npm ci replaces the whole folder, so they never go stale):
 * - `llama-addon.stock.node`: the original, kept so the step is reversible and can rebuild from scratch;
 * - `qwen-serve-addon.json`: what the last run did (`status` "patched" or "stock" with a `reason`), read by
 *   the next run (skip when nothing changed) and by the tests.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The only node-llama-cpp release the patch was written against. */
const NODE_LLAMA_CPP_VERSION = '3.21.1';
export const STATUS_FILE = 'qwen-serve-addon.json';
export const ADDON = 'llama-addon.node';
export const STOCK_ADDON = 'llama-addon.stock.node';

/** The installation cannot be patched (another version, another platform, no CPU prebuilt). */
export class UnsupportedInstallError extends Error {
  code = 'ADDON_PATCH_UNSUPPORTED';
  constructor(message) {
    super(message);
    this.name = 'UnsupportedInstallError';
  }
}

export const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/**
 * Where `name` is installed, as Node would find it from `require`'s location (by folder: node-llama-cpp's
 * `exports` hide its package.json from require.resolve).
 */
export function packageDir(require, name) {
  for (const dir of require.resolve.paths(name) ?? []) {
    if (fs.existsSync(path.join(dir, name, 'package.json'))) return path.join(dir, name);
  }
  return undefined;
}

/** The prebuilt CPU variant's name for this machine, as node-llama-cpp names its packages. */
function variantName() {
  if (process.platform !== 'linux') throw new UnsupportedInstallError(`the patch is built on Linux only (this is ${process.platform})`);
  const arch = process.arch === 'arm' ? 'armv7l' : process.arch;
  return `linux-${arch}`;
}

/** node-llama-cpp and its CPU prebuilt, resolved from the project at `root`. */
export function locate(root) {
  const require = createRequire(path.join(root, 'package.json'));
  const nodeLlamaCpp = packageDir(require, 'node-llama-cpp');
  if (!nodeLlamaCpp) throw new UnsupportedInstallError('node-llama-cpp is not installed');
  const version = JSON.parse(fs.readFileSync(path.join(nodeLlamaCpp, 'package.json'), 'utf8')).version;
  if (version !== NODE_LLAMA_CPP_VERSION) {
    throw new UnsupportedInstallError(`node-llama-cpp is ${version}; the patch is for ${NODE_LLAMA_CPP_VERSION} exactly`);
  }
  const name = variantName();
  // The prebuilt packages are node-llama-cpp's optional dependencies: resolve them from it.
  const variantPackage = packageDir(createRequire(path.join(nodeLlamaCpp, 'package.json')), `@node-llama-cpp/${name}`);
  const binsDir = variantPackage && path.join(variantPackage, 'bins', name);
  if (!binsDir || !fs.existsSync(path.join(binsDir, '_nlcBuildMetadata.json'))) {
    throw new UnsupportedInstallError(`node-llama-cpp's prebuilt @node-llama-cpp/${name} is not installed`);
  }
  const metadata = JSON.parse(fs.readFileSync(path.join(binsDir, '_nlcBuildMetadata.json'), 'utf8'));
  if (metadata.buildOptions?.gpu !== false) throw new UnsupportedInstallError(`@node-llama-cpp/${name} is not a CPU build`);
  return {
    nodeLlamaCpp,
    variant: `@node-llama-cpp/${name}`,
    binsDir,
    bundle: path.join(nodeLlamaCpp, 'llama', 'gitRelease.bundle'),
    addonSources: path.join(nodeLlamaCpp, 'llama', 'addon'),
    /** The prebuilt llama.cpp and ggml libraries the addon links (not the CPU backends, loaded at run time). */
    libraries: fs.readdirSync(binsDir).filter((f) => /^lib(llama|llama-common|ggml|ggml-base)(\.v[\d.]+)?\.so$/.test(f)),
  };
}

export function readStatus(binsDir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(binsDir, STATUS_FILE), 'utf8'));
  } catch {
    return undefined;
  }
}

export function writeStatus(binsDir, status) {
  fs.writeFileSync(path.join(binsDir, STATUS_FILE), `${JSON.stringify({ ...status, nodeLlamaCpp: NODE_LLAMA_CPP_VERSION }, null, 2)}\n`);
}

/** Replaces the addon with `candidate` in one rename (a process that has the old one loaded keeps it). */
export function swapIn(binsDir, candidate) {
  const next = path.join(binsDir, `${ADDON}.next`);
  fs.copyFileSync(candidate, next);
  fs.chmodSync(next, 0o755);
  fs.renameSync(next, path.join(binsDir, ADDON));
}
