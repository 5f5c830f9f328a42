/**
 * Exemplars through a real Prometheus: one started with exemplar storage on (a feature flag in Prometheus 2
 * and 3, off by default) scraping the given targets, and the exemplars read back with /api/v1/query_exemplars.
 * Prometheus asks for OpenMetrics first on every scrape (its default Accept header; `scrape_protocols`
 * only exists from 2.49), and only OpenMetrics carries exemplars.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { derivePrometheusConfig, startPrometheus, type Prometheus } from './monitoring.js';
import { until } from './until.js';

export const OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export interface ExemplarSeries {
  seriesLabels: Record<string, string>;
  exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
}

/** Prometheus (configuration derived from prometheus.yml, 1 s scrapes) scraping `targets`, storing exemplars. */
export async function startExemplarPrometheus(targets: string[], dir: string): Promise<Prometheus> {
  const file = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(file, derivePrometheusConfig(targets));
  return startPrometheus(file, dir, ['--enable-feature=exemplar-storage']);
}

/** The exemplars Prometheus holds for a series selector over the last `rangeS` seconds. */
export async function queryExemplars(prom: Prometheus, selector: string, rangeS = 3600): Promise<ExemplarSeries[]> {
  const end = Date.now() / 1000;
  const q = new URLSearchParams({ query: selector, start: String(end - rangeS), end: String(end + 60) });
  const res = await fetch(`${prom.url}/api/v1/query_exemplars?${q.toString()}`);
  const body = (await res.json()) as { status: string; data: ExemplarSeries[] | null; error?: string };
  if (body.status !== 'success') throw new Error(`query_exemplars ${selector}: ${body.error ?? res.status}`);
  return body.data ?? [];
}

/** Polls until Prometheus holds an exemplar with this trace id for the selector; returns its series. */
export async function waitForExemplar(prom: Prometheus, selector: string, traceId: string, timeoutMs = 20_000): Promise<ExemplarSeries[]> {
  return until(
    `an exemplar with trace ${traceId} on ${selector}`,
    async () => {
      const found = (await queryExemplars(prom, selector)).filter((s) => s.exemplars.some((e) => e.labels.trace_id === traceId));
      return found.length > 0 ? found : undefined;
    },
    timeoutMs,
  );
}

/** The scrape health of every target: Prometheus's OpenMetrics parser refuses a malformed exposition here. */
export async function targetHealth(prom: Prometheus): Promise<{ health: string; lastError: string; scrapeUrl: string }[]> {
  const res = await fetch(`${prom.url}/api/v1/targets`);
  const body = (await res.json()) as { data: { activeTargets: { health: string; lastError: string; scrapeUrl: string }[] } };
  return body.data.activeTargets;
}

/** A tiny metrics endpoint serving `body()` as OpenMetrics at /metrics. */
export async function serveOpenMetrics(body: () => string): Promise<{ target: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': OPENMETRICS }).end(body());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    target: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
