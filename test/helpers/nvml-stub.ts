/** Compiles test/fixtures/nvml-stub.c into a fake libnvidia-ml.so.1 for the NVML tests (no GPU or driver needed, only gcc). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('../fixtures/nvml-stub.c', import.meta.url));

/** Builds `<dir>/libnvidia-ml.so.1` and returns its path; `defines` become -D flags (e.g. 'NVML_STUB_WITHOUT_UUID'). */
export function buildNvmlStub(dir: string, defines: string[] = []): string {
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, 'libnvidia-ml.so.1');
  const args = ['-shared', '-fPIC', '-O1', '-Wall', ...defines.map((d) => `-D${d}`), '-o', out, SOURCE];
  try {
    execFileSync('gcc', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT')
      throw new Error('gcc not found on PATH: the NVML tests compile test/fixtures/nvml-stub.c with it', { cause: err });
    throw new Error(`compiling the NVML stub failed (gcc ${args.join(' ')}):\n${e.stderr?.toString() ?? e.message}`, { cause: err });
  }
  return out;
}
