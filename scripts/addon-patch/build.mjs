/**
 * Builds node-llama-cpp's addon (llama-addon.node) with our patch, against the prebuilt llama.cpp libraries
 * of the variant it will replace, so nothing of llama.cpp itself is compiled (about 30 s on 2 idle cores, against
 * ~6 min for node-llama-cpp's own source build, which needs cmake too).
 *
 * The llama.cpp headers come from node-llama-cpp's git bundle: the exact source its prebuilt libraries were
 * built from. Only the addon's own .cpp files are compiled; they link to the prebuilt libllama, libllama-common
 * and libggml* with an rpath of $ORIGIN, exactly as the stock addon does.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A step of the build failed; the message carries the tool's own output. */
export class AddonBuildError extends Error {
  code = 'ADDON_PATCH_BUILD_FAILED';
  constructor(message) {
    super(message);
    this.name = 'AddonBuildError';
  }
}

const tail = (text, lines = 15) => text.trim().split('\n').slice(-lines).join('\n');

function runSync(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.error || r.status !== 0)
    throw new AddonBuildError(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? tail(r.stderr || r.stdout)}`);
}

function run(cmd, args, what) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (err) => reject(new AddonBuildError(`${cmd}: ${err.message}`)));
    child.on('close', (status) => (status === 0 ? resolve() : reject(new AddonBuildError(`${what} failed:\n${tail(stderr)}`))));
  });
}

/** The llama.cpp include directories, checked out of the bundle (headers only: no full checkout). */
const HEADER_DIRS = ['include', 'common', 'src', 'ggml/include', 'vendor'];

function extractSource(bundle, dir) {
  runSync('git', ['-c', 'advice.detachedHead=false', 'clone', '-q', '--no-checkout', bundle, dir]);
  runSync('git', ['checkout', '-q', 'HEAD', '--', ...HEADER_DIRS], dir);
  return [dir, ...HEADER_DIRS.map((d) => path.join(dir, d))];
}

/** A copy of the addon's sources with the patch applied (its own repository, so git applies it there). */
function patchedSources(addonSources, patchFile, dir) {
  fs.cpSync(addonSources, dir, { recursive: true });
  runSync('git', ['init', '-q'], dir);
  runSync('git', ['apply', '--whitespace=nowarn', patchFile], dir);
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory() && e.name !== '.git') walk(path.join(d, e.name));
      else if (e.name.endsWith('.cpp')) files.push(path.join(d, e.name));
    }
  };
  walk(dir);
  return files;
}

/** Runs `jobs` (functions returning promises) with at most `limit` at a time. */
async function pool(jobs, limit) {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
}

/**
 * Builds the patched addon in a fresh temporary directory and returns its path there (the caller verifies it
 * and removes `tmp`).
 */
export async function buildPatchedAddon({ install, toolchain, patchFile, tmp }) {
  const includes = [...extractSource(install.bundle, path.join(tmp, 'llama.cpp')), toolchain.nodeHeaders, toolchain.addonApiHeaders];
  const sources = patchedSources(install.addonSources, patchFile, path.join(tmp, 'addon'));
  const objDir = path.join(tmp, 'obj');
  fs.mkdirSync(objDir);
  const [cxx, ...cxxFlags] = toolchain.cxx;
  // node-llama-cpp's own CMake build: C++17, exceptions, N-API 7, release.
  const flags = [
    ...cxxFlags,
    '-std=c++17',
    '-O2',
    '-DNDEBUG',
    '-fPIC',
    '-fexceptions',
    '-DNAPI_VERSION=7',
    ...includes.map((d) => `-I${d}`),
  ];
  const objects = sources.map((src, i) => path.join(objDir, `${i}-${path.basename(src, '.cpp')}.o`));
  await pool(
    sources.map((src, i) => () => run(cxx, [...flags, '-c', src, '-o', objects[i]], `compiling ${path.basename(src)}`)),
    Math.max(1, os.availableParallelism()),
  );
  const out = path.join(tmp, 'llama-addon.node');
  await run(
    cxx,
    [
      ...cxxFlags,
      '-shared',
      '-o',
      out,
      ...objects,
      `-L${install.binsDir}`,
      ...install.libraries.map((l) => `-l:${l}`),
      // The libraries sit next to the addon, wherever node_modules is copied to.
      '-Wl,-rpath,$ORIGIN',
    ],
    'linking llama-addon.node',
  );
  return out;
}
