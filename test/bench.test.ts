/**
 * The benchmark harness: its statistics, and a smoke run at tiny size against two real servers and the
 * direct in-process baseline (seconds, no thresholds: speed is judged by the benchmark, never by a test).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { parseExposition } from '../src/metrics/exposition-parser.js';
import { pickServedModel, resolveServedModel, type ListedModel } from '../src/tools/bench/served-model.js';
import { percentile, percentiles, ratio, summarize } from '../src/tools/bench/stats.js';
import { stepTotals } from '../src/tools/bench/steps.js';
import { startServer } from './helpers/server.js';

/** Runs the compiled bench with `args`; resolves with its exit code and output. */
async function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [path.resolve('dist/src/tools/bench/main.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  return { code, stdout, stderr };
}

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

describe('the served model (--served-model)', () => {
  const several: ListedModel[] = [
    { id: 'bge-m3', kind: 'embed' },
    { id: 'qwen2.5', kind: 'generate' },
    { id: 'qwen2.5-coder', kind: 'generate' },
  ];
  const where = 'http://server/v1/models';

  it('is the named model when it is listed and generates', () => {
    expect(pickServedModel(several, 'qwen2.5-coder', where)).toBe('qwen2.5-coder');
    expect(pickServedModel([{ id: 'llama' }], 'llama', where)).toBe('llama');
  });

  it('defaults to the first generation model, or the first listed when the server gives no kinds', () => {
    expect(pickServedModel(several, undefined, where)).toBe('qwen2.5');
    // An older qwen-serve, llama-server: no kind field.
    expect(pickServedModel([{ id: 'a' }, { id: 'b' }], undefined, where)).toBe('a');
    expect(pickServedModel([], undefined, where)).toBe('default');
  });

  it('refuses a model that is not listed, an embedding model, and a server with no generation model', () => {
    expect(() => pickServedModel(several, 'qwen3', where)).toThrow(
      '--served-model qwen3: http://server/v1/models does not list it (it lists bge-m3 (embed), qwen2.5 (generate), qwen2.5-coder (generate))',
    );
    expect(() => pickServedModel(several, 'bge-m3', where)).toThrow(/^--served-model bge-m3 is an embedding model \(kind "embed"\)/);
    expect(() => pickServedModel([{ id: 'bge-m3', kind: 'embed' }], undefined, where)).toThrow(
      'http://server/v1/models lists no generation model (it lists bge-m3 (embed))',
    );
  });

  it('is read from /v1/models, with the API key', async () => {
    let authorization: string | undefined;
    const stub = createServer((req, res) => {
      authorization = req.headers.authorization;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ object: 'list', data: several.map((m) => ({ ...m, object: 'model', created: 0, owned_by: 'qwen-serve' })) }),
      );
    });
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
      expect(await resolveServedModel(url, undefined, 'k')).toBe('qwen2.5');
      expect(authorization).toBe('Bearer k');
      await expect(resolveServedModel(url, 'bge-m3')).rejects.toThrow(/is an embedding model/);
    } finally {
      await new Promise((resolve) => stub.close(resolve));
    }
  });

  it("reads the decode-step figures of that model only, another model's traffic left out", () => {
    const samples = parseExposition(
      [
        'qwen_decode_step_tokens_count{model="qwen2.5",engine="0",device="cuda:0"} 10',
        'qwen_decode_step_tokens_count{model="qwen2.5",engine="1",device="cuda:1"} 5',
        'qwen_decode_step_tokens_sum{model="qwen2.5",engine="0",device="cuda:0"} 40',
        'qwen_decode_step_tokens_sum{model="qwen2.5",engine="1",device="cuda:1"} 20',
        'qwen_decode_step_sequences_sum{model="qwen2.5",engine="0",device="cuda:0"} 30',
        'qwen_decode_step_seconds_sum{model="qwen2.5",engine="0",device="cuda:0"} 0.5',
        'qwen_decode_step_tokens_count{model="qwen2.5-coder"} 1000',
        'qwen_decode_step_tokens_sum{model="qwen2.5-coder"} 9000',
        'qwen_decode_step_sequences_sum{model="qwen2.5-coder"} 8000',
        'qwen_decode_step_seconds_sum{model="qwen2.5-coder"} 70',
      ].join('\n'),
    );
    expect(stepTotals(samples, 'qwen2.5')).toEqual({ steps: 15, tokens: 60, sequences: 30, seconds: 0.5 });
    expect(stepTotals(samples, 'qwen2.5-coder')).toEqual({ steps: 1000, tokens: 9000, sequences: 8000, seconds: 70 });
    expect(stepTotals(samples, 'bge-m3')).toBeUndefined();
  });
});

describe('npm run bench (smoke)', () => {
  it('runs two endpoints side by side plus the direct baseline, and writes md, json and svg', { timeout: 120_000 }, async () => {
    const [a, b] = await Promise.all([startServer(), startServer()]);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-bench-'));
    try {
      const served = ((await (await fetch(`${a.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
      // A model the server does not serve: refused before any request, naming what it serves.
      const unknown = await bench(['--url', a.url, '--served-model', 'no-such-model', '--out', out]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain(`bench: --served-model no-such-model: ${a.url}/v1/models does not list it (it lists ${served}`);
      const args = [
        ...['--url', a.url, '--served-model', served, '--compare', b.url, '--compare-name', 'second'],
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
      const { code, stdout, stderr } = await bench(args);
      expect(code, stderr).toBe(0);
      const md = fs.readFileSync(path.join(out, 'bench.md'), 'utf8');
      for (const name of ['qwen-serve', 'second', 'direct', 'qwen-serve + scraping', 'qwen-serve ÷ second tokens/s'])
        expect(md).toContain(name);
      const json = JSON.parse(fs.readFileSync(path.join(out, 'bench.json'), 'utf8'));
      expect(json.settings.servedModel).toBe(served);
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
          ...['--url', server.url, '--noisy', 'long-prompt,big-answer,top-logprobs'],
          ...['--concurrency', '1', '--requests', '3', '--gen-tokens', '6', '--prompt-tokens', '8', '--rounds', '2', '--out', out],
        ];
        const { code, stderr } = await bench(args);
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
