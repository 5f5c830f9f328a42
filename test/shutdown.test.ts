/**
 * SIGTERM drains: in-flight requests finish, new ones are refused, the process exits 0. Past the
 * drain timeout the remaining streams get an error chunk, and the process still exits 0.
 */
import { describe, expect, it } from 'vitest';
import { health, readSse, startServer } from './helpers/server.js';
import { until } from './helpers/until.js';

function longStream(url: string, maxTokens: number) {
  return fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'x', max_tokens: maxTokens, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
}

describe('graceful shutdown', () => {
  // A tokenizer thread terminated while it loads its vocabulary (a native call) aborts the process (exit by
  // signal): the server is ready only once every tokenizer thread has loaded, and closes none before that.
  it('SIGTERM the moment the server is ready exits 0, three times out of three', async () => {
    for (let i = 0; i < 3; i++) {
      const server = await startServer();
      expect(await server.stop('SIGTERM')).toBe(0);
    }
  });

  it('SIGTERM with requests in flight: they complete, then the process exits 0', async () => {
    const server = await startServer(['--sequences', '4']);
    const responses = await Promise.all([longStream(server.url, 1500), longStream(server.url, 1500), longStream(server.url, 1500)]);
    for (const r of responses) expect(r.status).toBe(200);
    // All three are still generating when the signal comes (else the test would pass without draining anything).
    expect((await health(server.url)).requests.running).toBe(3);
    server.proc.kill('SIGTERM');
    // Draining once /health answers 503 (or the listener is closed): no sleep to guess when.
    await until('the server to drain', async () =>
      (await fetch(`${server.url}/health`).then(
        (r) => r.status,
        () => 503,
      )) === 503
        ? true
        : undefined,
    );
    // New work is refused while draining (503 + Connection: close, or the listener is already closed).
    const refused = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x' }),
    }).then(
      (r) => r.status,
      () => 'connection refused',
    );
    expect([503, 'connection refused']).toContain(refused);
    for (const r of responses) {
      const events = await readSse(r);
      expect(events.at(-1)).toBe('[DONE]');
      const usage = events.at(-2) as { usage: { completion_tokens: number } };
      expect(usage.usage.completion_tokens).toBe(1500);
      const last = events.at(-3) as { choices: { finish_reason: string }[] };
      expect(last.choices[0]!.finish_reason).toBe('length');
    }
    expect(await server.exited).toBe(0);
    expect(server.logs.some((l) => l.msg === 'stopped')).toBe(true);
  });

  it('past --drain-timeout the remaining streams get an error chunk and the process exits 0', async () => {
    const server = await startServer(['--drain-timeout', '0.5']);
    const res = await longStream(server.url, 2000);
    expect(res.status).toBe(200);
    server.proc.kill('SIGTERM');
    const events = await readSse(res);
    expect(events.at(-1)).toBe('[DONE]');
    const error = events.at(-2) as { error: { code: string; type: string } };
    expect(error.error.code).toBe('shutting_down');
    expect(await server.exited).toBe(0);
  });

  it('SIGINT on an idle server exits 0 at once', async () => {
    const server = await startServer();
    const started = Date.now();
    expect(await server.stop('SIGINT')).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
