/**
 * A server fault is a 5xx that is logged: every 5xx the server answers (a generation that throws, a worker
 * that dies, before or after a stream began) is logged once at error level in the main thread, with the
 * request id the client got in `x-request-id` and the error code, and never with the prompt text. Client
 * errors are not logged as faults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrape, value } from './helpers/prom.js';
import { until } from './helpers/until.js';
import { postJson, startServer, waitHealthy, waitIdle, type TestServer } from './helpers/server.js';

const SECRET = 'PROMPT-TEXT-NEVER-LOGGED';
let server: TestServer;

beforeAll(async () => {
  // One sequence per worker: the injected crash must not take another request's decode with it.
  server = await startServer(['--workers', '1', '--sequences', '1'], { env: { QWEN_TEST_FAULTS: '1' } });
});
afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

async function complete(prompt: string, stream = false) {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: 20, stream }),
  });
  return { status: res.status, requestId: res.headers.get('x-request-id')!, text: await res.text() };
}

/**
 * The error-level lines about one request, all of them: a later request's fault line is awaited first. The
 * server writes its log in order on one stream, so once that line has arrived none about the earlier request
 * is still on its way.
 */
async function faultLines(requestId: string) {
  await waitHealthy(server.url); // after a worker death, the barrier must not be refused as loading
  const barrier = await complete('__qwen_fault:throw__');
  await until('the later fault to be logged', () => server.logs.some((l) => l.requestId === barrier.requestId) || undefined);
  return server.logs.filter((l) => l.requestId === requestId && (l.level as number) >= 50);
}

describe('5xx answers are logged once, with the request id and code', () => {
  it('a generation that throws: 500 generation_failed', async () => {
    const res = await complete(`${SECRET} __qwen_fault:throw__`);
    expect(res.status).toBe(500);
    const lines = await faultLines(res.requestId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'server error answered', status: 500, code: 'generation_failed', route: '/v1/completions' });
  });

  it('the same failure after the stream began: an error event, logged the same way', async () => {
    const res = await complete(`${SECRET} __qwen_fault:throw__`, true);
    expect(res.status).toBe(200);
    expect(res.text).toContain('"code":"generation_failed"');
    const lines = await faultLines(res.requestId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ status: 500, code: 'generation_failed' });
  });

  it('a worker that dies: 503 worker_failed', async () => {
    const res = await complete(`${SECRET} __qwen_fault:crash__`);
    expect(res.status).toBe(503);
    const lines = await faultLines(res.requestId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ status: 503, code: 'worker_failed' });
    // The cause is a warning under the same request id.
    expect(server.logs.filter((l) => l.requestId === res.requestId).map((l) => l.msg)).toContain('model task failed');
    await waitHealthy(server.url);
  });

  it('client errors are not faults; no log line holds the prompt text', async () => {
    const bad = await complete(`${SECRET} ${'x '.repeat(5000)}`);
    expect(bad.status).toBe(400);
    expect(await faultLines(bad.requestId)).toEqual([]);
    expect(JSON.stringify(server.logs)).not.toContain(SECRET);
  });
});

describe("a choice that fails ends its request's other choices", () => {
  it('its sibling is cancelled and counted as sibling_failed, not as a client abort', async () => {
    await waitIdle(server.url);
    const before = await scrape(server.url);
    // One sequence: the first choice runs and fails at its second token while the second waits in the queue.
    const res = await postJson(`${server.url}/v1/completions`, { prompt: '__qwen_fault:throw__', n: 2, max_tokens: 20 });
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('generation_failed');
    await waitIdle(server.url);
    const after = await scrape(server.url);
    const finished = (reason: string) =>
      value(after, 'qwen_requests_finished_total', { finish_reason: reason }) -
      value(before, 'qwen_requests_finished_total', { finish_reason: reason });
    expect(['error', 'sibling_failed', 'abort', 'stop', 'length'].map(finished)).toEqual([1, 1, 0, 0, 0]);
  });
});
