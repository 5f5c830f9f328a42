/**
 * Checks a rebuilt addon before it replaces the installed one: a child process loads it through
 * node-llama-cpp (CPU only) in place of the installed file, and samples with it (verify-child.mjs). The
 * candidate sits in the prebuilt folder meanwhile, so its $ORIGIN rpath finds the same libraries it will use.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON } from './variant.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TIMEOUT_MS = 120_000;

/** The rebuilt addon failed its check; the message carries the child's output. */
export class AddonCheckError extends Error {
  code = 'ADDON_PATCH_CHECK_FAILED';
  constructor(message) {
    super(message);
    this.name = 'AddonCheckError';
  }
}

export async function verifyAddon({ root, binsDir, built }) {
  const candidate = path.join(binsDir, 'llama-addon.candidate.node');
  fs.copyFileSync(built, candidate);
  try {
    const child = spawn(
      process.execPath,
      ['--require', path.join(HERE, 'dlopen-redirect.cjs'), path.join(HERE, 'verify-child.mjs'), root],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, QWEN_SERVE_ADDON_INSTALLED: path.resolve(binsDir, ADDON), QWEN_SERVE_ADDON_CANDIDATE: candidate },
      },
    );
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    const code = await new Promise((resolve) => child.on('close', (c, signal) => resolve(c ?? signal)));
    clearTimeout(timer);
    const lines = output
      .trim()
      .split('\n')
      .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
    if (code !== 0 || !lines.at(-1)?.includes('"ok":true')) {
      // The error's own line first (a warning shows only that), then the end of the output.
      const error = lines.find((l) => /^\w*Error\b/.test(l)) ?? `exit ${code}`;
      throw new AddonCheckError(`the rebuilt addon failed its check: ${error}\n${lines.slice(-12).join('\n')}`);
    }
  } finally {
    fs.rmSync(candidate, { force: true });
  }
}
