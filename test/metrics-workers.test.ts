/**
 * Merging across workers: per-worker series on request, counters that survive a worker's death,
 * and a worker that fails mid-generation costing only its own request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cumulativeSamples, scrape, value } from './helpers/prom.js';
import { health, postJson, startServer, waitAllWorkers, waitIdle, type TestServer } from './helpers/server.js';
import { until, when } from './helpers/until.js';

async function traffic(url: string, n: number): Promise<number> {
  let tokens = 0;
  for (let i = 0; i < n; i++) {
    const r = await postJson(`${url}/v1/completions`, { prompt: `p${i}`, max_tokens: 12, temperature: 0, ignore_eos: true });
    expect(r.status).toBe(200);
    tokens += r.body.usage.completion_tokens;
  }
  return tokens;
}

describe('per-worker mode', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(['--workers', '2', '--sequences', '2', '--metrics-per-worker']);
    await waitAllWorkers(server.url);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('worker series carry worker="0" and worker="1" and add up to the traffic', async () => {
    const tokens = await traffic(server.url, 6);
    // Two at once, so both workers get some.
    const both = await Promise.all([traffic(server.url, 2), traffic(server.url, 2)]);
    await waitIdle(server.url);
    const samples = await scrape(server.url);
    const workers = new Set(samples.filter((s) => s.name === 'qwen_generation_tokens_total').map((s) => s.labels.worker));
    expect([...workers].sort()).toEqual(['0', '1']);
    expect(value(samples, 'qwen_generation_tokens_total')).toBe(tokens + both[0] + both[1]);
    // Main-thread metrics have no worker label.
    expect(samples.find((s) => s.name === 'qwen_inference_request_total')?.labels.worker).toBeUndefined();
  });
});

describe('a worker that dies', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(['--workers', '2', '--sequences', '1'], { env: { QWEN_TEST_FAULTS: '1' } });
    // The crash takes one worker down: the other must already be serving, or none would be.
    await waitAllWorkers(server.url);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('fails only its request with a clear 503, is replaced, and no merged counter goes down', async () => {
    await traffic(server.url, 4);
    await waitIdle(server.url);
    const before = await scrape(server.url);
    expect(value(before, 'qwen_worker_restarts_total')).toBe(0);

    const crashed = await postJson(`${server.url}/v1/completions`, {
      prompt: 'please __qwen_fault:crash__',
      max_tokens: 20,
      temperature: 0,
    });
    expect(crashed.status).toBe(503);
    expect(crashed.body.error.code).toBe('worker_failed');
    expect(crashed.body.error.message).toMatch(/worker/i);

    // Fewer workers are ready while the replacement loads. The pool learns of the death from the worker's
    // exit, which may come just after the 503; the replacement then loads the model (~0.5 s), far longer than
    // one poll, so the state cannot slip by unseen.
    await until(
      'health to count the dead worker out',
      when(
        () => health(server.url),
        (h) => h.status === 'degraded',
      ),
      10_000,
      10,
    );
    // The other worker keeps serving meanwhile, and the replacement loads.
    expect((await postJson(`${server.url}/v1/completions`, { prompt: 'x', max_tokens: 3 })).status).toBe(200);
    await until(
      'the replacement to be ready',
      when(
        () => health(server.url),
        (h) => h.status === 'ok',
      ),
      20_000,
    );

    const after = await scrape(server.url);
    expect(value(after, 'qwen_worker_restarts_total')).toBe(1);
    expect(value(after, 'qwen_workers_ready')).toBe(2);
    expect(value(after, 'qwen_requests_finished_total', { finish_reason: 'error' })).toBe(1);
    const a = cumulativeSamples(before);
    const b = cumulativeSamples(after);
    for (const [key, v] of a) expect(b.get(key) ?? 0, key).toBeGreaterThanOrEqual(v);
    // And they keep counting on the replacement.
    await traffic(server.url, 4);
    const later = cumulativeSamples(await scrape(server.url));
    for (const [key, v] of b) expect(later.get(key) ?? 0, key).toBeGreaterThanOrEqual(v);
    expect(server.proc.exitCode).toBeNull();
  });

  it('a generation that throws fails only that request; the worker keeps serving', async () => {
    const before = await scrape(server.url);
    const failed = await postJson(`${server.url}/v1/completions`, { prompt: '__qwen_fault:throw__', max_tokens: 20 });
    expect(failed.status).toBe(500);
    expect(failed.body.error.type).toBe('server_error');
    const stream = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: '__qwen_fault:throw__', max_tokens: 20, stream: true }),
    });
    const text = await stream.text();
    expect(text).toContain('"code":"generation_failed"');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    for (let i = 0; i < 4; i++) expect((await postJson(`${server.url}/v1/completions`, { prompt: 'ok', max_tokens: 3 })).status).toBe(200);
    const after = await scrape(server.url);
    expect(
      value(after, 'qwen_requests_finished_total', { finish_reason: 'error' }) -
        value(before, 'qwen_requests_finished_total', { finish_reason: 'error' }),
    ).toBe(2);
    expect(value(after, 'qwen_worker_restarts_total')).toBe(value(before, 'qwen_worker_restarts_total'));
  });
});
