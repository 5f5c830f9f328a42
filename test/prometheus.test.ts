/**
 * A real Prometheus (Debian's package) scrapes a running qwen-serve with the repository's prometheus.yml
 * (interval shortened), and the tutorial's two PromQL queries return the values qwen-serve itself reports.
 * With exemplar storage on, a traced request's trace id comes back from Prometheus beside its latencies.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENMETRICS, startExemplarPrometheus, targetHealth, waitForExemplar } from './helpers/exemplars.js';
import { tempDir, type Prometheus } from './helpers/monitoring.js';
import { scrape, value } from './helpers/prom.js';
import { freePort, postJson, startServer, waitIdle, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

const hasPrometheus = !spawnSync('prometheus', ['--version']).error;
if (!hasPrometheus) console.warn('SKIPPED LOUDLY: prometheus is not installed (apt-get install prometheus); .ci/run installs it');

interface QueryResult {
  metric: Record<string, string>;
  value: [number, string];
}

describe.skipIf(!hasPrometheus)('a real Prometheus', () => {
  let server: TestServer;
  let prometheus: ChildProcess;
  let promUrl: string;
  let dir: string;

  async function query(q: string): Promise<QueryResult[]> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { status: string; data: { result: QueryResult[] } };
    expect(body.status).toBe('success');
    return body.data.result;
  }

  beforeAll(async () => {
    const metricsPort = await freePort();
    server = await startServer(['--workers', '2', '--metrics-port', String(metricsPort)]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-prom-'));
    // The repository's own file, with only the interval and the target changed.
    const original = fs.readFileSync('prometheus.yml', 'utf8');
    const config = original
      .replace(/scrape_interval: 5s/, 'scrape_interval: 1s')
      .replace(/evaluation_interval: 5s/, 'evaluation_interval: 1s')
      .replace(/scrape_timeout: 4s/, 'scrape_timeout: 900ms')
      .replace(/localhost:8000/, `127.0.0.1:${metricsPort}`);
    expect(config).not.toBe(original);
    expect(config).toContain(`127.0.0.1:${metricsPort}`);
    expect(config).toContain('job_name: qwen-inference');
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
    const promPort = await freePort();
    promUrl = `http://127.0.0.1:${promPort}`;
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    // Wait until Prometheus has scraped the target once, so the traffic below falls inside rate() windows.
    await until('the first scrape', async () => ((await query('up{job="qwen-inference"}'))[0]?.value[1] === '1' ? true : undefined));
  });

  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    await server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("answers the tutorial's two queries with qwen-serve's own numbers", async () => {
    for (let i = 0; i < 6; i++) {
      const r = await postJson(`${server.url}/v1/completions`, { prompt: `q${i}`, max_tokens: 8 });
      expect(r.status).toBe(200);
    }
    await waitIdle(server.url);
    const ours = await scrape(server.url);
    const labels = { method: 'POST', endpoint: '/v1/completions' };
    const count = value(ours, 'qwen_inference_duration_seconds_count', labels);
    const sum = value(ours, 'qwen_inference_duration_seconds_sum', labels);
    expect(count).toBe(6);

    // Prometheus has the same raw counter once it has scraped after the traffic.
    await until('the counter to reach 6', async () => {
      const r = await query('qwen_inference_request_total{endpoint="/v1/completions"}');
      return r[0]?.value[1] === '6' ? true : undefined;
    });

    const rate = await query('rate(qwen_inference_request_total[5m])');
    const completions = rate.find((r) => r.metric.endpoint === '/v1/completions');
    expect(completions, JSON.stringify(rate)).toBeDefined();
    expect(Number(completions!.value[1])).toBeGreaterThan(0);

    const avg = await query('rate(qwen_inference_duration_seconds_sum[5m]) / rate(qwen_inference_duration_seconds_count[5m])');
    const avgCompletions = avg.find((r) => r.metric.endpoint === '/v1/completions');
    expect(avgCompletions, JSON.stringify(avg)).toBeDefined();
    // Every request fell between two scrapes inside the window, so the ratio is exactly sum / count.
    expect(Number(avgCompletions!.value[1])).toBeCloseTo(sum / count, 6);

    // Merged worker metrics arrive too (Prometheus negotiates OpenMetrics: this also checks that format).
    const tokens = await query('qwen_generation_tokens_total');
    expect(Number(tokens[0]!.value[1])).toBe(value(ours, 'qwen_generation_tokens_total'));
  });
});

describe.skipIf(!hasPrometheus)('a real Prometheus with exemplar storage', () => {
  const TRACE = '0af7651916cd43dd8448eb211c80319c';
  let server: TestServer;
  let metricsUrl: string;
  let prom: Prometheus | undefined;
  let dir: string;

  beforeAll(async () => {
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    // Tracing on; nothing listens at the collector's address: the spans are lost, the exemplars are not.
    const collector = `http://127.0.0.1:${await freePort()}`;
    server = await startServer(['--workers', '1', '--metrics-port', String(metricsPort), '--otlp-endpoint', collector]);
    dir = tempDir('qwen-serve-prom-exemplars-');
  });

  afterAll(async () => {
    await prom?.stop();
    await server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reads a traced request's trace id back from Prometheus beside its first-token and request latencies", async () => {
    const r = await postJson(
      `${server.url}/v1/completions`,
      { prompt: 'q', max_tokens: 4 },
      { traceparent: `00-${TRACE}-b7ad6b7169203331-01` },
    );
    expect(r.status).toBe(200);
    await waitIdle(server.url);
    const text = await (await fetch(metricsUrl, { headers: { accept: OPENMETRICS } })).text();
    // The server's own OpenMetrics scrape carries the trace id (the request path feeds the exemplar store).
    expect(text).toContain(`trace_id="${TRACE}"`);
    prom = await startExemplarPrometheus([new URL(metricsUrl).host], dir);
    const ttft = await waitForExemplar(prom, 'qwen_time_to_first_token_seconds_bucket', TRACE);
    expect(ttft[0]!.seriesLabels).toMatchObject({ job: 'qwen-inference', model: expect.any(String) as string });
    const duration = await waitForExemplar(prom, 'qwen_inference_duration_seconds_bucket{endpoint="/v1/completions"}', TRACE);
    expect(duration[0]!.seriesLabels.method).toBe('POST');
    expect(await targetHealth(prom)).toEqual([expect.objectContaining({ health: 'up', lastError: '' })]);
  });
});
