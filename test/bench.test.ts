/**
 * The benchmark harness: its statistics, and a smoke run at tiny size against two real servers and the
 * direct in-process baseline (seconds, no thresholds: speed is judged by the benchmark, never by a test).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { percentile, percentiles, ratio, summarize } from '../src/tools/bench/stats.js';
import { startServer } from './helpers/server.js';

describe('statistics', () => {
  it('percentiles interpolate between closest ranks', () => {
    const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(v, 0)).toBe(1);
    expect(percentile(v, 100)).toBe(10);
    expect(percentile(v, 50)).toBe(5.5);
    expect(percentile(v, 90)).toBeCloseTo(9.1, 10);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([3, 1, 2], 50)).toBe(2); // order does not matter
    expect(Number.isNaN(percentile([], 50))).toBe(true);
    expect(() => percentile(v, 101)).toThrow(RangeError);
    expect(percentiles([10, 20])).toEqual({ p50: 15, p95: 19.5, p99: 19.9 });
  });

  it('ratios are NaN rather than misleading', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(Number.isNaN(ratio(1, 0))).toBe(true);
    expect(Number.isNaN(ratio(NaN, 1))).toBe(true);
  });

  it('a level summary counts tokens over the wall time of the level', () => {
    const level = summarize('x', 2, [
      { startMs: 0, endMs: 1000, ttftMs: 100, itlMs: [10, 20], tokens: 3 },
      { startMs: 500, endMs: 2000, ttftMs: 200, itlMs: [30], tokens: 2 },
      { startMs: 600, endMs: 700, ttftMs: NaN, itlMs: [], tokens: 0, error: 'boom' },
    ]);
    expect(level.seconds).toBe(2);
    expect(level.tokensPerSecond).toBe(2.5);
    expect(level.requestsPerSecond).toBe(1);
    expect(level.errors).toBe(1);
    expect(level.ttftMs.p50).toBe(150);
    expect(level.itlMs.p50).toBe(20);
    expect(level.e2eMs.p50).toBe(1250);
  });
});

describe('npm run bench (smoke)', () => {
  it('runs two endpoints side by side plus the direct baseline, and writes md, json and svg', { timeout: 120_000 }, async () => {
    const [a, b] = await Promise.all([startServer(), startServer()]);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-bench-'));
    try {
      const args = [
        path.resolve('dist/src/tools/bench/main.js'),
        ...['--url', a.url, '--compare', b.url, '--compare-name', 'second'],
        ...['--baseline', 'direct', '--model', inject('tinyModel'), '--threads', '1'],
        ...[
          '--concurrency',
          '1,2',
          '--gen-tokens',
          '8',
          '--prompt-tokens',
          '8',
          '--requests',
          '4',
          '--metrics-scrape',
          '0.1',
          '--out',
          out,
        ],
      ];
      const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
      expect(code, stderr).toBe(0);
      const md = fs.readFileSync(path.join(out, 'bench.md'), 'utf8');
      for (const name of ['qwen-serve', 'second', 'direct', 'qwen-serve + scraping', 'qwen-serve ÷ second tokens/s'])
        expect(md).toContain(name);
      const json = JSON.parse(fs.readFileSync(path.join(out, 'bench.json'), 'utf8'));
      expect(json.levels.map((l: { concurrency: number }) => l.concurrency)).toEqual([1, 2]);
      for (const level of json.levels) {
        for (const r of level.results) {
          expect(r.errors).toBe(0);
          expect(r.requests).toBe(4);
          expect(r.tokensPerSecond).toBeGreaterThan(0);
        }
        expect(level.scraped.scrapes).toBeGreaterThan(0);
        // The server's own decode-step figures: every request of the level decoded its prompt and 7 fed-back tokens.
        expect(level.steps.steps).toBeGreaterThan(0);
        expect(level.steps.tokensPerStep).toBeGreaterThanOrEqual(1);
        expect(level.steps.sequencesPerStep).toBeGreaterThanOrEqual(1);
        expect(level.steps.sequencesPerStep).toBeLessThanOrEqual(level.concurrency);
      }
      expect(md).toContain('qwen-serve decode steps');
      expect(fs.readFileSync(path.join(out, 'bench.svg'), 'utf8')).toMatch(/^<svg /);
      expect(stdout).toContain('wrote');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('npm run bench --noisy (smoke)', () => {
  it(
    'runs normal traffic alone and beside each heavy client, and reports the ratios and what the heavy client got',
    { timeout: 120_000 },
    async () => {
      const server = await startServer(['--context-size', '512']);
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-noisy-'));
      try {
        const args = [
          path.resolve('dist/src/tools/bench/main.js'),
          ...['--url', server.url, '--noisy', 'long-prompt,big-answer,top-logprobs'],
          ...['--concurrency', '1', '--requests', '3', '--gen-tokens', '6', '--prompt-tokens', '8', '--rounds', '2', '--out', out],
        ];
        const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
        expect(code, stderr).toBe(0);
        const json = JSON.parse(fs.readFileSync(path.join(out, 'noisy.json'), 'utf8'));
        expect(json.rows.map((r: { kind: string }) => r.kind)).toEqual(['long-prompt', 'big-answer', 'top-logprobs']);
        for (const row of json.rows) {
          expect(row.alone.requests).toBe(6);
          expect(row.beside.requests).toBe(6);
          expect(row.alone.errors + row.beside.errors).toBe(0);
          expect(Object.values(row.heavyStatuses).reduce((a: number, b) => a + (b as number), 0)).toBeGreaterThan(0);
        }
        // The refused kinds are refused (a 400 each), the served one is served.
        const statuses = (kind: string) => Object.keys(json.rows.find((r: { kind: string }) => r.kind === kind).heavyStatuses);
        expect(statuses('long-prompt')).toEqual(['400']);
        expect(statuses('big-answer')).toEqual(['400']);
        expect(statuses('top-logprobs')).toEqual(['200']);
        expect(fs.readFileSync(path.join(out, 'noisy.md'), 'utf8')).toContain('| long-prompt:');
      } finally {
        await server.stop();
        fs.rmSync(out, { recursive: true, force: true });
      }
    },
  );
});
