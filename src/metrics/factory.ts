/** Builds prom-client metrics from their definitions, so names, labels and aggregators live in one table. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MetricDef } from './definitions.js';

type Labels<D extends MetricDef> = D['labelNames'][number];

/** `collect`: for a count kept elsewhere (a plain cumulative number), copied into the counter at scrape time. */
export function counter<D extends MetricDef>(
  d: D,
  registry: Registry,
  collect?: (this: Counter<Labels<D>>) => void | Promise<void>,
): Counter<Labels<D>> {
  return new Counter({ name: d.name, help: d.help, labelNames: d.labelNames, aggregator: d.aggregator, registers: [registry], collect });
}

export function gauge<D extends MetricDef>(
  d: D,
  registry: Registry,
  collect?: (this: Gauge<Labels<D>>) => void | Promise<void>,
): Gauge<Labels<D>> {
  return new Gauge({ name: d.name, help: d.help, labelNames: d.labelNames, aggregator: d.aggregator, registers: [registry], collect });
}

export function histogram<D extends MetricDef>(d: D, registry: Registry, buckets: number[]): Histogram<Labels<D>> {
  return new Histogram({ name: d.name, help: d.help, labelNames: d.labelNames, aggregator: d.aggregator, registers: [registry], buckets });
}
