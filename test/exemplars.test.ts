/**
 * The exemplar store alone and with the merged registry: bucket choice, label-subset matching (merged series
 * carry engine and device labels besides), the latest exemplar winning, OpenMetrics only, the 128-character
 * label-set limit, age; /metrics adding exemplars to OpenMetrics scrapes only; and a real Prometheus with
 * exemplar storage reading them back from the annotated merged text (its OpenMetrics parser is the strict
 * check of the syntax: promtool 2.42's `check metrics` reads only the Prometheus text format, which has no
 * exemplars, so promtool checks the text around them).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, WORKER } from '../src/metrics/definitions.js';
import { ExemplarStore } from '../src/metrics/exemplars.js';
import { fixOpenMetricsCounters, metricsRouter } from '../src/metrics/exposition.js';
import { histogram } from '../src/metrics/factory.js';
import { merge, withLabels, type MetricJson } from '../src/metrics/json.js';
import { queryExemplars, serveOpenMetrics, startExemplarPrometheus, targetHealth, waitForExemplar } from './helpers/exemplars.js';
import { hasTool, tempDir, warnMissing, type Prometheus } from './helpers/monitoring.js';
import { until } from './helpers/until.js';

const hasPromtool = hasTool('promtool');
const hasPrometheus = hasTool('prometheus');
if (!hasPromtool) warnMissing('promtool', 'prometheus', 'promtool check metrics on annotated text');
if (!hasPrometheus) warnMissing('prometheus', 'prometheus', 'exemplars read back from a real Prometheus');

const T1 = '0af7651916cd43dd8448eb211c80319c';
const T2 = '4bf92f3577b34da6a3ce929d0e0e4736';
const TTFT = WORKER.ttft.name;
const NOW = 1_700_000_000_000;

/** A histogram family in OpenMetrics with bounds 0.1, 0.5, 1 for each label set given. */
function histogramText(name: string, labelSets: string[]): string {
  const lines = [`# HELP ${name} h`, `# TYPE ${name} histogram`];
  for (const l of labelSets) {
    for (const le of ['0.1', '0.5', '1', '+Inf']) lines.push(`${name}_bucket{le="${le}"${l ? `,${l}` : ''}} 0`);
    lines.push(`${name}_sum${l ? `{${l}}` : ''} 0`, `${name}_count${l ? `{${l}}` : ''} 0`);
  }
  return `${lines.join('\n')}\n# EOF\n`;
}

/** The annotated lines, as `line → exemplar suffix`. */
function exemplarsOf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(' # {');
    if (i > 0) out.set(line.slice(0, i), line.slice(i));
  }
  return out;
}

const store = (now = NOW) => new ExemplarStore({ now: () => now });

describe('ExemplarStore', () => {
  const text = histogramText(TTFT, ['model="chat"']);

  it('puts an exemplar in the smallest bucket whose bound is at least its value (bounds inclusive, +Inf last)', () => {
    for (const [value, le] of [
      [0.05, '0.1'],
      [0.1, '0.1'],
      [0.3, '0.5'],
      [1, '1'],
      [7, '+Inf'],
    ] as const) {
      const s = store();
      s.record(TTFT, { model: 'chat' }, value, T1, NOW - 1000);
      expect([...exemplarsOf(s.annotate(text))], `${value}`).toEqual([
        [`${TTFT}_bucket{le="${le}",model="chat"} 0`, ` # {trace_id="${T1}"} ${value} ${(NOW - 1000) / 1000}.000`],
      ]);
    }
  });

  it('annotates every series whose labels include the recorded ones (extra engine labels), and no other', () => {
    const s = store();
    const merged = histogramText(TTFT, [
      'model="chat",engine="0",device="cuda:0"',
      'model="chat",engine="1",device="cuda:1"',
      'model="other",engine="0",device="cuda:0"',
    ]);
    s.record(TTFT, { model: 'chat' }, 0.3, T1);
    const got = exemplarsOf(s.annotate(merged));
    expect([...got.keys()]).toEqual([
      `${TTFT}_bucket{le="0.5",model="chat",engine="0",device="cuda:0"} 0`,
      `${TTFT}_bucket{le="0.5",model="chat",engine="1",device="cuda:1"} 0`,
    ]);
    // Another metric of the same labels is not touched, nor is a label set that only shares a name.
    const other = histogramText(WORKER.itl.name, ['model="chat"']);
    expect(s.annotate(other)).toBe(other);
  });

  it('matches label values exactly, escaped ones included, and several labels together', () => {
    const s = store();
    const name = MAIN.duration.name;
    const t = histogramText(name, ['method="POST",endpoint="/v1/chat/completions"', 'method="POST",endpoint="/v1/completions"']);
    s.record(name, { method: 'POST', endpoint: '/v1/completions' }, 0.7, T1);
    expect([...exemplarsOf(s.annotate(t)).keys()]).toEqual([`${name}_bucket{le="1",method="POST",endpoint="/v1/completions"} 0`]);
    const q = store();
    q.record(TTFT, { model: 'a "quoted" \\ model' }, 0.01, T2);
    expect(exemplarsOf(q.annotate(histogramText(TTFT, ['model="a \\"quoted\\" \\\\ model"']))).size).toBe(1);
  });

  it('keeps the latest exemplar of each bucket, and an earlier one never replaces a later one', () => {
    const s = store();
    s.record(TTFT, { model: 'chat' }, 0.2, T1, NOW - 3000);
    s.record(TTFT, { model: 'chat' }, 0.4, T2, NOW - 2000);
    s.record(TTFT, { model: 'chat' }, 0.3, 'ffffffffffffffffffffffffffffffff', NOW - 5000);
    s.record(TTFT, { model: 'chat' }, 0.05, T1, NOW - 1000);
    const got = exemplarsOf(s.annotate(text));
    expect(got.get(`${TTFT}_bucket{le="0.5",model="chat"} 0`)).toBe(` # {trace_id="${T2}"} 0.4 ${(NOW - 2000) / 1000}.000`);
    expect(got.get(`${TTFT}_bucket{le="0.1",model="chat"} 0`)).toBe(` # {trace_id="${T1}"} 0.05 ${(NOW - 1000) / 1000}.000`);
    expect(got.size).toBe(2);
    // Recorded after a scrape has shown the bounds: straight into the bucket.
    s.record(TTFT, { model: 'chat' }, 0.45, 'ffffffffffffffffffffffffffffffff', NOW - 500);
    expect(exemplarsOf(s.annotate(text)).get(`${TTFT}_bucket{le="0.5",model="chat"} 0`)).toContain('ffffffffffffffffffffffffffffffff');
  });

  it('annotates only OpenMetrics: Prometheus text (no # EOF) comes back unchanged', () => {
    const s = store();
    s.record(TTFT, { model: 'chat' }, 0.3, T1);
    const prometheusText = text.replace('# EOF\n', '');
    expect(s.annotate(prometheusText)).toBe(prometheusText);
    expect(s.annotate(text)).not.toBe(text);
  });

  it('refuses a trace id that would make the label set longer than 128 characters', () => {
    const s = store();
    // "trace_id" is 8 characters: a 120-character id makes exactly 128.
    s.record(TTFT, { model: 'chat' }, 0.3, 'a'.repeat(121));
    expect(s.annotate(text)).toBe(text);
    s.record(TTFT, { model: 'chat' }, 0.3, 'a'.repeat(120));
    expect([...exemplarsOf(s.annotate(text)).values()]).toEqual([` # {trace_id="${'a'.repeat(120)}"} 0.3 ${NOW / 1000}.000`]);
    s.record(TTFT, { model: 'chat' }, Number.NaN, T1);
    s.record(TTFT, { model: 'chat' }, Infinity, T1);
    expect(exemplarsOf(s.annotate(text)).size).toBe(1);
  });

  it('drops exemplars older than its maximum age', () => {
    let now = NOW;
    const s = new ExemplarStore({ now: () => now, maxAgeMs: 60_000 });
    s.record(TTFT, { model: 'chat' }, 0.3, T1);
    expect(exemplarsOf(s.annotate(text)).size).toBe(1);
    now += 60_001;
    expect(s.annotate(text)).toBe(text);
  });
});

describe('/metrics', () => {
  let url: string;
  let close: () => void;
  beforeAll(async () => {
    const registry = new Registry();
    histogram(WORKER.ttft, registry, [0.1, 0.5, 1]).observe({ model: 'chat' }, 0.3);
    const exemplars = new ExemplarStore();
    exemplars.record(TTFT, { model: 'chat' }, 0.3, T1);
    const app = express().use(
      metricsRouter({
        exemplars,
        collect: async (contentType) => ({
          registry: merge([(await registry.getMetricsAsJSON()) as unknown as MetricJson[]], contentType),
        }),
      }),
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    close = () => server.close();
  });
  afterAll(() => close?.());

  it('carries exemplars in OpenMetrics and none in the Prometheus text format', async () => {
    const om = await (await fetch(url, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } })).text();
    expect(om).toContain(`${TTFT}_bucket{le="0.5",model="chat"} 1 # {trace_id="${T1}"} 0.3 `);
    const plain = await (await fetch(url)).text();
    expect(plain).toContain(`${TTFT}_bucket{le="0.5",model="chat"} 1`);
    expect(plain).not.toContain('trace_id');
  });
});

/**
 * A merged scrape as the server builds it: the main registry (request duration) and two engines' worker
 * registries (time to first token) with their engine and device labels, merged in OpenMetrics. No counter:
 * promtool reads an OpenMetrics counter family `x` with samples `x_total` as an untyped metric without help.
 */
async function mergedScrape(exemplars: ExemplarStore): Promise<{ plain: string; annotated: string }> {
  const buckets = [0.05, 0.1, 0.5, 1, 5];
  const main = new Registry();
  histogram(MAIN.duration, main, buckets).observe({ method: 'POST', endpoint: '/v1/chat/completions' }, 0.8);
  const workers = [0, 1].map((i) => {
    const r = new Registry();
    histogram(WORKER.ttft, r, buckets).observe({ model: 'chat' }, 0.03 * (i + 1));
    return r;
  });
  const parts: MetricJson[][] = [(await main.getMetricsAsJSON()) as unknown as MetricJson[]];
  for (const [i, r] of workers.entries())
    parts.push(withLabels((await r.getMetricsAsJSON()) as unknown as MetricJson[], { engine: String(i), device: `cuda:${i}` }));
  const plain = fixOpenMetricsCounters(await merge(parts, Registry.OPENMETRICS_CONTENT_TYPE).metrics());
  return { plain, annotated: exemplars.annotate(plain) };
}

describe('the merged registry annotated', () => {
  it('gains exemplars on bucket lines only, the text around them unchanged and accepted by promtool', async (ctx) => {
    const exemplars = new ExemplarStore();
    exemplars.record(TTFT, { model: 'chat' }, 0.03, T1);
    exemplars.record(MAIN.duration.name, { method: 'POST', endpoint: '/v1/chat/completions' }, 0.8, T2);
    const { plain, annotated } = await mergedScrape(exemplars);
    const got = exemplarsOf(annotated);
    expect([...got.keys()].sort()).toEqual([
      `${MAIN.duration.name}_bucket{le="1",method="POST",endpoint="/v1/chat/completions"} 1`,
      `${TTFT}_bucket{le="0.05",model="chat",engine="0",device="cuda:0"} 1`,
      `${TTFT}_bucket{le="0.05",model="chat",engine="1",device="cuda:1"} 0`,
    ]);
    // Exemplars only ever end a line: without them the text is the merged text.
    expect(annotated.replace(/ # \{trace_id="[^"]*"\} \S+ \S+$/gm, '')).toBe(plain);
    if (!hasPromtool) ctx.skip();
    // promtool 2.42 parses the Prometheus text format only: exemplars are a syntax error to it...
    const annotatedCheck = spawnSync('promtool', ['check', 'metrics'], { input: annotated, encoding: 'utf8' });
    expect(annotatedCheck.stderr).toMatch(/parsing error/);
    // ...so it checks the names, types and labels of what is annotated, the same text without exemplars.
    const check = spawnSync('promtool', ['check', 'metrics'], { input: plain, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});

describe.skipIf(!hasPrometheus)('a real Prometheus with exemplar storage', () => {
  let dir: string;
  let prom: Prometheus | undefined;
  let endpoint: Awaited<ReturnType<typeof serveOpenMetrics>> | undefined;
  const exemplars = new ExemplarStore();
  let body = '';

  beforeAll(async () => {
    dir = tempDir('qwen-serve-exemplars-');
    exemplars.record(TTFT, { model: 'chat' }, 0.03, T1);
    exemplars.record(MAIN.duration.name, { method: 'POST', endpoint: '/v1/chat/completions' }, 0.8, T2);
    body = (await mergedScrape(exemplars)).annotated;
    endpoint = await serveOpenMetrics(() => body);
    prom = await startExemplarPrometheus([endpoint.target], dir);
  });
  afterAll(async () => {
    await prom?.stop();
    await endpoint?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes the annotated merged text and answers query_exemplars with the trace ids', async () => {
    const ttft = await waitForExemplar(prom!, `${TTFT}_bucket`, T1);
    // Both engines' series carry the model's exemplar, in the bucket its value fell in.
    expect(ttft.map((s) => s.seriesLabels.engine).sort()).toEqual(['0', '1']);
    for (const s of ttft) {
      expect(s.seriesLabels).toMatchObject({ model: 'chat', le: '0.05', job: 'qwen-inference' });
      expect(s.exemplars[0]).toMatchObject({ labels: { trace_id: T1 }, value: '0.03' });
    }
    const duration = await waitForExemplar(prom!, `${MAIN.duration.name}_bucket`, T2);
    expect(duration).toHaveLength(1);
    expect(duration[0]!.seriesLabels).toMatchObject({ method: 'POST', endpoint: '/v1/chat/completions', le: '1' });
    expect(duration[0]!.exemplars[0]!.value).toBe('0.8');
    // Prometheus's OpenMetrics parser took the whole exposition.
    expect(await targetHealth(prom!)).toEqual([expect.objectContaining({ health: 'up', lastError: '' })]);
  });

  it('stores a newer exemplar of the same bucket at the next scrapes', async () => {
    exemplars.record(TTFT, { model: 'chat' }, 0.04, T2);
    body = (await mergedScrape(exemplars)).annotated;
    await waitForExemplar(prom!, `${TTFT}_bucket{engine="0"}`, T2);
    const all = await until('both exemplars of engine 0', async () => {
      const s = await queryExemplars(prom!, `${TTFT}_bucket{engine="0"}`);
      return s[0]?.exemplars.length === 2 ? s[0] : undefined;
    });
    expect(all.exemplars.map((e) => e.labels.trace_id)).toEqual([T1, T2]);
  });
});
