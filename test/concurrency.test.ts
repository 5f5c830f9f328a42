/**
 * Concurrency over 2 workers × 4 sequences: batched streams all complete, clients that vanish free
 * their sequences, a storm of dropped connections leaves the server healthy, a full queue is a 429.
 */
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_SCRIPT_TEXT } from '../src/demo-model/demo-model.js';
import { health, postJson, readSse, startServer, waitIdle, type TestServer } from './helpers/server.js';
import { until, when } from './helpers/until.js';

let server: TestServer;
let client: OpenAI;

beforeAll(async () => {
  server = await startServer(['--workers', '2', '--sequences', '4', '--max-queue', '64']);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

/** Opens a long stream, reads its first chunk, then returns an abort function. */
async function openLongStream(): Promise<() => void> {
  const ac = new AbortController();
  const res = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'x', max_tokens: 2000, ignore_eos: true, stream: true, temperature: 0 }),
    signal: ac.signal,
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  await reader.read();
  return () => ac.abort();
}

describe('concurrency', () => {
  it('8 concurrent streams over 2 workers × 4 sequences all complete and their usage adds up', async () => {
    const maxTokens = 40;
    const runs = Array.from({ length: 8 }, async () => {
      const stream = await client.completions.create({
        model: 'tiny',
        prompt: 'x',
        max_tokens: maxTokens,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
        ignore_eos: true,
      } as unknown as OpenAI.CompletionCreateParamsStreaming);
      let text = '';
      let usage: OpenAI.CompletionUsage | undefined;
      let finish: string | null = null;
      for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
          text += c.text;
          finish = c.finish_reason ?? finish;
        }
      }
      return { text, usage: usage!, finish };
    });
    const results = await Promise.all(runs);
    for (const r of results) {
      expect(r.finish).toBe('length');
      expect(r.usage.completion_tokens).toBe(maxTokens);
      expect(r.text.startsWith(TINY_SCRIPT_TEXT + TINY_SCRIPT_TEXT)).toBe(true);
    }
    const total = results.reduce((s, r) => s + r.usage.completion_tokens, 0);
    expect(total).toBe(8 * maxTokens);
  });

  it('clients that disconnect mid-stream free their sequences', async () => {
    const aborts = await Promise.all(Array.from({ length: 8 }, () => openLongStream()));
    // All 8 sequences are busy now.
    expect((await health(server.url)).requests.running).toBe(8);
    aborts.forEach((abort) => abort());
    await waitIdle(server.url, 5000);
    // The next 8 long streams all get sequences at once: each has its first chunk while the others still
    // run (one left waiting in the queue behind 2000-token streams would not have started yet).
    const again = await Promise.all(Array.from({ length: 8 }, () => openLongStream()));
    const h = await health(server.url);
    expect(h.requests).toEqual({ running: 8, waiting: 0 });
    again.forEach((abort) => abort());
    await waitIdle(server.url, 5000);
    expect(server.proc.exitCode).toBeNull();
  });

  it('a storm of 50 connect-and-drop clients leaves the server healthy', async () => {
    const body = JSON.stringify({ prompt: 'x', max_tokens: 500, ignore_eos: true, stream: true });
    const drops = Array.from(
      { length: 50 },
      (_, i) =>
        new Promise<void>((resolve) => {
          const req = http.request(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
          req.on('error', () => resolve());
          req.on('close', () => resolve());
          req.end(body);
          // Some drop before the response, some after the first bytes.
          setTimeout(() => req.destroy(), (i % 10) * 5);
          req.on('response', (res) => res.once('data', () => req.destroy()));
        }),
    );
    await Promise.all(drops);
    await waitIdle(server.url, 10_000);
    expect((await health(server.url)).status).toBe('ok');
    const after = await postJson(`${server.url}/v1/completions`, { prompt: 'x', max_tokens: 50, temperature: 0 });
    expect(after.status).toBe(200);
    expect(after.body.choices[0].text).toBe(TINY_SCRIPT_TEXT);
    expect(server.proc.exitCode).toBeNull();
  });
});

const LONG_CONTEXT = 32_768;
/** A request that cannot end by itself before the 2 s timeout: it ends only by the timeout (or our cancel). */
const ENDLESS = { prompt: 'x', max_tokens: LONG_CONTEXT - 16, ignore_eos: true, temperature: 0 };

describe('admission', () => {
  let small: TestServer;

  beforeAll(async () => {
    // A long context, so that a request can ask for more tokens than any machine generates before the 2 s
    // timeout: at ~32k tokens of context every decode step reads the whole cache (here 32k tokens take minutes).
    small = await startServer(['--sequences', '1', '--max-queue', '1', '--request-timeout', '2', '--context-size', String(LONG_CONTEXT)]);
  });

  afterAll(async () => {
    expect(await small.stop()).toBe(0);
  });

  it('past the queue a request gets 429 with Retry-After; a queued one times out with a clear error', async () => {
    const running = postJson(`${small.url}/v1/completions`, ENDLESS);
    await until(
      'the first request to run',
      when(
        () => health(small.url),
        (h) => h.requests.running === 1,
      ),
    );
    const queued = postJson(`${small.url}/v1/completions`, ENDLESS);
    await until(
      'the second request to queue',
      when(
        () => health(small.url),
        (h) => h.requests.waiting === 1,
      ),
    );
    const refused = await postJson(`${small.url}/v1/completions`, ENDLESS);
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('queue_full');
    expect(refused.body.error.type).toBe('rate_limit_error');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get('retry-after-ms')).not.toBeNull();

    // Neither can finish: the running one is cut at its deadline, then the queued one (which starts only then,
    // or never) at its own. Both say so.
    for (const r of await Promise.all([running, queued])) {
      expect(r.status, JSON.stringify(r.body)).toBe(504);
      expect(r.body.error.code).toBe('request_timeout');
      expect(r.body.error.message).toContain('--request-timeout');
    }
    await waitIdle(small.url, 5000);
  });

  it('a stream that times out ends with an error chunk and [DONE]', async () => {
    const res = await fetch(`${small.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...ENDLESS, stream: true }),
    });
    expect(res.status).toBe(200);
    const events = (await readSse(res)) as { error?: { code: string } }[];
    expect(events.at(-1)).toBe('[DONE]');
    expect(events.at(-2)!.error!.code).toBe('request_timeout');
  });
});
