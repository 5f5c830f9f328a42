/**
 * Overload: 10× more concurrent requests than sequences + queue. The excess get 429 quickly, every
 * admitted request completes, and the counters match the client's tally exactly.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { scrape, value } from './helpers/prom.js';
import { health, postJson, startServer, waitIdle, type TestServer } from './helpers/server.js';

let server: TestServer;
const SEQUENCES = 2;
const QUEUE = 2;
/**
 * Long enough that an admitted answer (~0.7 ms a step on the tiny model) outlasts the refusals by far: 40 requests
 * arriving at once take ~120 ms to be read, prepared and refused on 2 busy cores.
 */
const ADMITTED_TOKENS = 1000;

beforeAll(async () => {
  server = await startServer(['--sequences', String(SEQUENCES), '--max-queue', String(QUEUE)]);
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

it('10× overload: 429s come fast, admitted requests all complete, counters match', async () => {
  const before = await scrape(server.url);
  const n = 10 * (SEQUENCES + QUEUE);
  const results = await Promise.all(
    Array.from({ length: n }, async () => {
      const started = performance.now();
      const r = await postJson(`${server.url}/v1/completions`, {
        prompt: 'load',
        max_tokens: ADMITTED_TOKENS,
        ignore_eos: true,
        temperature: 0,
        // One token per step: drafting would finish the tiny model's repeating answer about as fast as a refusal.
        speculative: false,
      });
      return { ...r, ms: performance.now() - started };
    }),
  );
  const ok = results.filter((r) => r.status === 200);
  const refused = results.filter((r) => r.status === 429);
  expect(ok.length + refused.length).toBe(n);
  expect(ok.length).toBeGreaterThanOrEqual(SEQUENCES + QUEUE);
  expect(refused.length).toBeGreaterThan(0);
  for (const r of ok) {
    expect(r.body.usage.completion_tokens).toBe(ADMITTED_TOKENS);
    expect(r.body.choices[0].finish_reason).toBe('length');
  }
  for (const r of refused) {
    expect(r.body.error.code).toBe('queue_full');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  }
  // A refusal costs no generation: it comes back long before the admitted requests finish.
  const slowestRefusal = Math.max(...refused.map((r) => r.ms));
  const fastestAdmitted = Math.min(...ok.map((r) => r.ms));
  expect(slowestRefusal).toBeLessThan(fastestAdmitted);

  await waitIdle(server.url);
  const after = await scrape(server.url);
  const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
  expect(delta('qwen_inference_request_total', { endpoint: '/v1/completions' })).toBe(n);
  expect(delta('qwen_requests_rejected_total', { reason: 'queue_full' })).toBe(refused.length);
  expect(delta('qwen_requests_finished_total', { finish_reason: 'length' })).toBe(ok.length);
  expect(delta('qwen_generation_tokens_total')).toBe(ok.length * ADMITTED_TOKENS);
  expect(delta('qwen_prompt_tokens_total')).toBe(ok.reduce((s, r) => s + r.body.usage.prompt_tokens, 0));
});

it('a request with more choices than free places is refused whole: no choice runs, and it is counted once, as refused', async () => {
  await waitIdle(server.url);
  const { workers } = await health(server.url);
  const slots = workers.total * SEQUENCES;
  const before = await scrape(server.url);
  // Every sequence busy with a stream that lasts until this test ends it: the queue has room for QUEUE
  // choices, and this request has one more.
  const busy = Array.from({ length: slots }, () => new AbortController());
  const started = await Promise.all(
    busy.map((ac) =>
      fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'busy', max_tokens: 2000, ignore_eos: true, stream: true }),
        signal: ac.signal,
      }),
    ),
  );
  // A stream's headers go out when its prompt is accepted: each holds a sequence now.
  for (const res of started) expect(res.status).toBe(200);
  const r = await postJson(`${server.url}/v1/completions`, { prompt: 'many', n: QUEUE + 1, max_tokens: 50, ignore_eos: true });
  expect(r.status).toBe(429);
  expect(r.body.error.code).toBe('queue_full');
  for (const ac of busy) ac.abort();
  await waitIdle(server.url);
  const after = await scrape(server.url);
  const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
  expect(delta('qwen_requests_rejected_total', { reason: 'queue_full' })).toBe(1);
  // Only the busy streams ran, and ended when their clients left: none of the refused request's choices
  // started, and none finished.
  expect(delta('qwen_request_queue_seconds_count')).toBe(slots);
  expect(delta('qwen_requests_finished_total', { finish_reason: 'abort' })).toBe(slots);
  for (const reason of ['stop', 'length', 'error', 'sibling_failed'])
    expect(delta('qwen_requests_finished_total', { finish_reason: reason })).toBe(0);
});

it('a request with more choices than the server ever admits at once is a 400 naming n, not a 429 to retry', async () => {
  const { workers } = await health(server.url);
  const most = workers.total * SEQUENCES + QUEUE;
  const r = await postJson(`${server.url}/v1/completions`, { prompt: 'too many', n: most + 1, max_tokens: 5 });
  expect(r.status).toBe(400);
  expect(r.body.error.param).toBe('n');
  expect(r.body.error.message).toContain(`at most ${most} at once`);
});
