/**
 * GET /metrics: the merged registry in Prometheus text format, or OpenMetrics when the scraper asks for
 * it (Accept: application/openmetrics-text) with the exemplars of traced requests, gzip-compressed when
 * Accept-Encoding allows.
 */
import compression from 'compression';
import { Router, type Request } from 'express';
import { Registry } from 'prom-client';
import type { ExemplarStore } from './exemplars.js';
import type { ContentType } from './json.js';

/** One collection of every registry, merged. */
export interface Collection {
  registry: Registry;
}

/** What a scrape reads: something that collects and merges the registries (src/engine/metrics-collector.ts). */
export interface MetricsSource {
  collect(contentType: ContentType): Promise<Collection>;
  /** Exemplars to write into OpenMetrics scrapes (absent: none). */
  readonly exemplars?: ExemplarStore;
}

function negotiate(req: Request): ContentType {
  const accept = req.get('accept') ?? '';
  return accept.includes('application/openmetrics-text') ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
}

/**
 * prom-client 15 writes an OpenMetrics counter named `x_total` as family `x_total` with samples
 * `x_total_total`; OpenMetrics wants family `x` with samples `x_total`. Rewrites those counters.
 */
export function fixOpenMetricsCounters(text: string): string {
  const families = new Set([...text.matchAll(/^# TYPE (\w+)_total counter$/gm)].map((m) => m[1]!));
  if (families.size === 0) return text;
  return text
    .split('\n')
    .map((line) => {
      const meta = /^# (HELP|TYPE|UNIT) (\w+)_total( .*)?$/.exec(line);
      if (meta && families.has(meta[2]!)) return `# ${meta[1]} ${meta[2]}${meta[3] ?? ''}`;
      const sample = /^(\w+)_total_total([{ ].*)$/.exec(line);
      if (sample && families.has(sample[1]!)) return `${sample[1]}_total${sample[2]}`;
      return line;
    })
    .join('\n');
}

/** The merged registry's OpenMetrics text, its counters fixed, then its exemplars added (they exist only in OpenMetrics). */
function openMetrics(text: string, exemplars: ExemplarStore | undefined): string {
  const fixed = fixOpenMetricsCounters(text);
  return exemplars ? exemplars.annotate(fixed) : fixed;
}

export function metricsRouter(collector: MetricsSource): Router {
  const router = Router();
  // Compress everything on this router, whatever its content type (the default filter skips
  // OpenMetrics' media type).
  router.get('/metrics', compression({ filter: () => true }), async (req, res) => {
    const contentType = negotiate(req);
    const { registry } = await collector.collect(contentType);
    const text = await registry.metrics();
    const body = contentType === Registry.OPENMETRICS_CONTENT_TYPE ? openMetrics(text, collector.exemplars) : text;
    res.set('Content-Type', contentType).set('Cache-Control', 'no-store').send(body);
  });
  return router;
}
