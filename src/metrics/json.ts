/**
 * Registries as plain JSON (prom-client's getMetricsAsJSON shape): what workers and engine processes
 * send, how a dead one's counters are kept, how series get labelled, and the one merge
 * (AggregatorRegistry.aggregate) used at every level: workers → engine → front.
 */
import { AggregatorRegistry, Registry } from 'prom-client';

export interface MetricJson {
  name: string;
  type: string;
  help?: string;
  aggregator?: string;
  values: { labels: Record<string, string | number>; value?: number; metricName?: string }[];
}

export type ContentType = typeof Registry.PROMETHEUS_CONTENT_TYPE | typeof Registry.OPENMETRICS_CONTENT_TYPE;

/** The Prometheus text format, for readers outside src/metrics (which alone imports prom-client). */
export const PROMETHEUS_TEXT: ContentType = Registry.PROMETHEUS_CONTENT_TYPE;

/** Only cumulative metrics outlive their worker or engine: a dead one's gauges mean nothing. */
export function cumulative(snapshot: MetricJson[]): MetricJson[] {
  return snapshot.filter((m) => m.type === 'counter' || m.type === 'histogram');
}

/** The snapshot with `labels` added to every series (worker="2", engine="1" device="cuda:1", …). */
export function withLabels(snapshot: MetricJson[], labels: Record<string, string> | undefined): MetricJson[] {
  if (!labels) return snapshot;
  return snapshot.map((m) => ({ ...m, values: m.values.map((v) => ({ ...v, labels: { ...v.labels, ...labels } })) }));
}

/** Merges registries by each metric's aggregator (counters and histograms sum). */
export function merge(parts: MetricJson[][], contentType: ContentType = Registry.PROMETHEUS_CONTENT_TYPE): Registry {
  return (AggregatorRegistry.aggregate as (arr: object[], type: ContentType) => Registry)(parts, contentType);
}

/** merge(), back to JSON: what an engine process sends the front. */
export async function mergeToJson(parts: MetricJson[][]): Promise<MetricJson[]> {
  return (await merge(parts).getMetricsAsJSON()) as unknown as MetricJson[];
}
