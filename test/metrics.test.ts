/**
 * Metrics are true: every counter moves by exactly what the client sent and received, across two
 * workers merged by AggregatorRegistry; labels stay bounded; the exposition is valid.
 */
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_ENDPOINTS } from '../src/metrics/definitions.js';
import { parseExposition, scrape, value, type Sample } from './helpers/prom.js';
import { freePort, postJson, startServer, waitAllWorkers, waitIdle, type TestServer } from './helpers/server.js';

const MODEL = 'metrics-test';
let server: TestServer;
let client: OpenAI;

beforeAll(async () => {
  server = await startServer(['--workers', '2', '--sequences', '2', '--model-id', MODEL, '--metrics-port', String(await freePort())]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
  // These tests count on both workers (workers_ready, capacity).
  await waitAllWorkers(server.url);
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

const m = { model: MODEL };

describe('counters equal what the client saw', () => {
  it('requests, durations, tokens and finish reasons', async () => {
    await waitIdle(server.url);
    const before = await scrape(server.metricsUrl!);
    let promptTokens = 0;
    let completionTokens = 0;
    const finishes: Record<string, number> = { stop: 0, length: 0, abort: 0, error: 0 };
    const calls: Record<string, number> = { '/v1/completions': 0, '/v1/chat/completions': 0, '/v1/models': 0 };

    for (const maxTokens of [50, 3, 7]) {
      const r = await client.completions.create({ model: MODEL, prompt: 'count me', max_tokens: maxTokens, temperature: 0 });
      calls['/v1/completions']!++;
      promptTokens += r.usage!.prompt_tokens;
      completionTokens += r.usage!.completion_tokens;
      finishes[r.choices[0]!.finish_reason]!++;
    }
    const stopped = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 50, temperature: 0, stop: ['世'] });
    calls['/v1/completions']!++;
    promptTokens += stopped.usage!.prompt_tokens;
    completionTokens += stopped.usage!.completion_tokens;
    finishes[stopped.choices[0]!.finish_reason]!++;
    for (let i = 0; i < 2; i++) {
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: `hello ${i}` }],
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
      calls['/v1/chat/completions']!++;
      for await (const chunk of stream) {
        if (chunk.usage) {
          promptTokens += chunk.usage.prompt_tokens;
          completionTokens += chunk.usage.completion_tokens;
        }
        const f = chunk.choices[0]?.finish_reason;
        if (f) finishes[f]!++;
      }
    }
    await client.models.list();
    calls['/v1/models']!++;
    // Refused requests count as requests and as rejections, not as finished ones.
    const bad = await postJson(`${server.url}/v1/completions`, { prompt: 5 });
    expect(bad.status).toBe(400);
    calls['/v1/completions']!++;
    const tooLong = await postJson(`${server.url}/v1/completions`, { prompt: 'x', max_tokens: 100_000 });
    expect(tooLong.status).toBe(400);
    calls['/v1/completions']!++;

    await waitIdle(server.url);
    const after = await scrape(server.metricsUrl!);
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);

    for (const [endpoint, n] of Object.entries(calls)) {
      const method = endpoint === '/v1/models' ? 'GET' : 'POST';
      expect(delta('qwen_inference_request_total', { method, endpoint }), endpoint).toBe(n);
      expect(delta('qwen_inference_duration_seconds_count', { method, endpoint }), endpoint).toBe(n);
    }
    expect(delta('qwen_prompt_tokens_total', m)).toBe(promptTokens);
    expect(delta('qwen_generation_tokens_total', m)).toBe(completionTokens);
    expect(delta('qwen_request_generation_tokens_sum', m)).toBe(completionTokens);
    expect(delta('qwen_request_generation_tokens_count', m)).toBe(6);
    expect(delta('qwen_request_prompt_tokens_sum', m)).toBe(promptTokens);
    // One first-token observation per request; every later token is one inter-token observation.
    expect(delta('qwen_time_to_first_token_seconds_count', m)).toBe(6);
    expect(delta('qwen_inter_token_latency_seconds_count', m)).toBe(completionTokens - 6);
    expect(delta('qwen_request_queue_seconds_count', m)).toBe(6);
    for (const [reason, n] of Object.entries(finishes)) {
      expect(delta('qwen_requests_finished_total', { ...m, finish_reason: reason }), reason).toBe(n);
    }
    expect(delta('qwen_requests_rejected_total', { ...m, reason: 'invalid' })).toBe(2);
    expect(value(after, 'qwen_active_connections')).toBe(0);
    expect(value(after, 'qwen_requests_running', m)).toBe(0);
    expect(value(after, 'qwen_workers_ready')).toBe(2);
    expect(value(after, 'qwen_sequences_capacity', m)).toBe(4);
  });

  it('aborted streams count as finish_reason="abort" and their tokens are counted', async () => {
    await waitIdle(server.url);
    const before = await scrape(server.url);
    let seen = 0;
    for (let i = 0; i < 2; i++) {
      const ac = new AbortController();
      const stream = await client.completions.create(
        {
          model: MODEL,
          prompt: 'x',
          max_tokens: 1500,
          stream: true,
          ignore_eos: true,
        } as unknown as OpenAI.CompletionCreateParamsStreaming,
        { signal: ac.signal },
      );
      try {
        for await (const chunk of stream) {
          seen += chunk.choices.length;
          if (seen >= 5 * (i + 1)) ac.abort();
        }
      } catch {
        // aborted
      }
    }
    await waitIdle(server.url);
    const after = await scrape(server.url);
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(delta('qwen_requests_finished_total', { ...m, finish_reason: 'abort' })).toBe(2);
    expect(delta('qwen_inference_request_total', { method: 'POST', endpoint: '/v1/completions' })).toBe(2);
    const generated = delta('qwen_generation_tokens_total', m);
    expect(generated).toBeGreaterThanOrEqual(seen);
    expect(generated).toBeLessThan(3000);
    expect(delta('qwen_request_generation_tokens_sum', m)).toBe(generated);
  });
});

describe('labels', () => {
  it('1000 requests to random unknown paths add no label value beyond "other"', async () => {
    const before = await scrape(server.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    await Promise.all(
      Array.from(
        { length: 1000 },
        (_, i) =>
          new Promise<void>((resolve, reject) => {
            const path = `/random/${i}/${Math.random().toString(36).slice(2)}`;
            http
              .get(`${server.url}${path}`, { agent }, (res) => {
                res.resume();
                res.on('end', () => resolve());
              })
              .on('error', reject);
          }),
      ),
    );
    agent.destroy();
    const after = await scrape(server.url);
    const endpoints = new Set(after.filter((s) => s.name === 'qwen_inference_request_total').map((s) => s.labels.endpoint));
    // The known routes (pre-created at 0) and `other`; nothing from the random paths.
    expect([...endpoints].filter((e) => !(API_ENDPOINTS as readonly string[]).includes(e!) && e !== 'other')).toEqual([]);
    expect(
      value(after, 'qwen_inference_request_total', { endpoint: 'other' }) -
        value(before, 'qwen_inference_request_total', { endpoint: 'other' }),
    ).toBe(1000);
    const seriesCount = (s: Sample[]) => s.filter((x) => x.name.startsWith('qwen_inference')).length;
    expect(seriesCount(after) - seriesCount(before)).toBeLessThanOrEqual(1 + 1 + 2 + 16); // one new "other" series of each
  });

  it('the API port and the metrics port serve the same metrics', async () => {
    const a = await scrape(server.url);
    const b = await scrape(server.metricsUrl!);
    expect(value(b, 'qwen_workers_ready')).toBe(value(a, 'qwen_workers_ready'));
    const onlyMetrics = await fetch(`${server.metricsUrl}/v1/models`);
    expect(onlyMetrics.status).toBe(404);
  });
});

describe('exposition', () => {
  it('gzip when the scraper accepts it', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve) =>
      http.get(`${server.url}/metrics`, { headers: { 'accept-encoding': 'gzip' } }, resolve),
    );
    expect(res.headers['content-encoding']).toBe('gzip');
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = gunzipSync(Buffer.concat(chunks)).toString();
    expect(text).toContain('qwen_inference_request_total');
    const plain = await fetch(`${server.url}/metrics`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-encoding')).toBeNull();
  });

  it('OpenMetrics when the scraper asks for it, Prometheus text otherwise', async () => {
    const om = await fetch(`${server.url}/metrics`, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } });
    expect(om.headers.get('content-type')).toContain('application/openmetrics-text');
    const body = await om.text();
    expect(body.trimEnd().endsWith('# EOF')).toBe(true);
    const text = await fetch(`${server.url}/metrics`);
    expect(text.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  });

  it('promtool check metrics finds no problem', async (ctx) => {
    const which = spawnSync('promtool', ['--version']);
    if (which.error) {
      console.warn('SKIPPED LOUDLY: promtool is not installed (apt-get install prometheus); .ci/run installs it');
      ctx.skip();
    }
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('every documented metric is exposed, and every exposed qwen_ metric is documented', async () => {
    const { ALL_METRICS } = await import('../src/metrics/definitions.js');
    const { readFileSync } = await import('node:fs');
    const docs = readFileSync('docs/metrics.md', 'utf8');
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const exposed = new Set([...text.matchAll(/^# TYPE (qwen_\w+)/gm)].map((x) => x[1]));
    for (const d of ALL_METRICS) {
      expect(docs, d.name).toContain(`\`${d.name}\``);
      // GPU series exist only with NVML, engine series only with engine processes (both tested elsewhere).
      if (!d.name.startsWith('qwen_gpu_') && !d.name.startsWith('qwen_engine_')) expect(exposed.has(d.name), d.name).toBe(true);
    }
    for (const name of exposed)
      expect(
        ALL_METRICS.some((d) => d.name === name),
        name,
      ).toBe(true);
  });

  it('without NVML there are no GPU series and scrapes still succeed', async () => {
    const samples = parseExposition(await (await fetch(`${server.url}/metrics`)).text());
    expect(samples.some((s) => s.name.startsWith('qwen_gpu_'))).toBe(false);
    expect(server.logs.some((l) => String(l.msg).includes('GPU metrics'))).toBe(true);
  });
});
