/**
 * What rebuilding node-llama-cpp's addon needs on this machine: a C++ compiler, git (the llama.cpp headers
 * come out of node-llama-cpp's git bundle), Node's own headers (node_api.h) and node-addon-api's (napi.h).
 * Each is looked up, never installed: a missing one is a reason to keep the stock addon, not an error.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { packageDir } from './variant.mjs';

/** A tool the build cannot go without; the message names it and how to get it. */
export class MissingToolError extends Error {
  code = 'ADDON_PATCH_MISSING_TOOL';
  constructor(message) {
    super(message);
    this.name = 'MissingToolError';
  }
}

const runs = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
};

/** $CXX (may carry flags, e.g. "ccache g++"), else c++, else g++. */
function compiler() {
  const fromEnv = process.env.CXX?.trim();
  const candidates = fromEnv ? [fromEnv.split(/\s+/)] : [['c++'], ['g++']];
  for (const [cmd, ...flags] of candidates) if (runs(cmd, [...flags, '--version'])) return [cmd, ...flags];
  throw new MissingToolError(
    `no C++ compiler (${fromEnv ? `$CXX=${fromEnv} does not run` : 'neither c++ nor g++ is on PATH'}; Debian: apt-get install g++)`,
  );
}

/** The directory holding node_api.h for the Node that runs this script. */
function nodeHeaders() {
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    // Official binaries and Docker images: <prefix>/bin/node next to <prefix>/include/node.
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, 'node_api.h')));
  if (!found)
    throw new MissingToolError(
      `no Node.js headers (node_api.h) in ${candidates.join(', ')} (set npm_config_nodedir, or install Node's headers)`,
    );
  return found;
}

/** node-addon-api's include directory, resolved from node-llama-cpp (its dependency). */
function addonApiHeaders(nodeLlamaCppDir) {
  const dir = packageDir(createRequire(path.join(nodeLlamaCppDir, 'package.json')), 'node-addon-api');
  if (dir && fs.existsSync(path.join(dir, 'napi.h'))) return dir;
  throw new MissingToolError('node-addon-api (a dependency of node-llama-cpp) is not installed');
}

/** Everything the build needs, or a MissingToolError naming what is missing. */
export function findToolchain(nodeLlamaCppDir) {
  if (!runs('git', ['--version']))
    throw new MissingToolError("no git (needed to read the llama.cpp source from node-llama-cpp's bundle; Debian: apt-get install git)");
  return { cxx: compiler(), nodeHeaders: nodeHeaders(), addonApiHeaders: addonApiHeaders(nodeLlamaCppDir) };
}
