/**
 * The test run refuses a dist/ older than the sources: the integration tests start the compiled server.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { staleOutputs } from './helpers/global-setup.js';

describe('staleOutputs', () => {
  it('names the sources whose compiled file is missing or older, and nothing once they are rebuilt', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-stale-'));
    try {
      const write = (file: string, mtime: number) => {
        fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        fs.writeFileSync(path.join(root, file), '');
        fs.utimesSync(path.join(root, file), mtime, mtime);
      };
      write('src/a.ts', 2000);
      write('src/sub/b.ts', 2000);
      write('workers/c.ts', 2000);
      write('dist/src/a.js', 1000); // older than its source
      write('dist/src/sub/b.js', 3000); // newer
      // dist/workers/c.js missing
      expect(staleOutputs(['src', 'workers'], root).sort()).toEqual(['src/a.ts', 'workers/c.ts']);
      write('dist/src/a.js', 3000);
      write('dist/workers/c.js', 3000);
      expect(staleOutputs(['src', 'workers'], root)).toEqual([]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
