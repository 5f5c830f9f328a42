/**
 * Builds the merged view a scrape returns: the front's registry and every engine's collection (its
 * workers' registries and baselines and its own registry, plus, for an engine process, the counters
 * of its earlier processes; an engine process's series carry its `engine` and `device` labels),
 * merged with AggregatorRegistry.aggregate().
 */
import type { Logger } from 'pino';
import type { Collection, MetricsSource } from '../metrics/exposition.js';
import { merge, withLabels, type ContentType, type MetricJson } from '../metrics/json.js';
import type { MainMetrics } from '../metrics/main-metrics.js';
import type { Engine, WorkerSnapshot } from './engine.js';

export interface CollectorOptions {
  /** How long a scrape waits for each worker. */
  timeoutMs: number;
}

/** One collection: the merged registry and, from the same collection, each ready worker's snapshot. */
export interface Collected extends Collection {
  /** Each ready worker's snapshot, with a slot unique across engines (the dashboard's worker table). */
  workers: WorkerSnapshot[];
}

export class MetricsCollector implements MetricsSource {
  constructor(
    private readonly engines: Engine[],
    private readonly main: MainMetrics,
    private readonly opts: CollectorOptions,
    private readonly log?: Logger,
  ) {}

  /**
   * Collects every engine once. The worker snapshots come back with the registry they were merged into,
   * so two concurrent collections (a scrape and a dashboard sample) cannot swap each other's.
   */
  async collect(contentType: ContentType): Promise<Collected> {
    const started = performance.now();
    const collections = await Promise.all(this.engines.map((e) => e.collect(this.opts.timeoutMs)));
    const gathered = performance.now();
    const late = collections.some((c) => c.late);
    // Counted before the front's registry is read, so this scrape already shows it.
    if (late) this.main.collectTimedOut();
    if (collections.some((c) => c.failed)) this.main.collectFailed();
    const parts: MetricJson[][] = [(await this.main.registry.getMetricsAsJSON()) as unknown as MetricJson[]];
    collections.forEach((c, i) => parts.push(...c.parts.map((p) => withLabels(p, this.engines[i]!.labels))));
    const workers = collections.flatMap((c, i) => {
      const engine = this.engines[i]!;
      // Slots and worker ids are per engine; the dashboard lists workers of all engines in one table.
      return c.workers.map((w) => ({
        ...w,
        slot: engine.index * engine.workers + w.slot,
        workerId: engine.index * 1_000_000 + w.workerId,
      }));
    });
    const merged = merge(parts, contentType);
    this.log?.debug(
      { gatherMs: +(gathered - started).toFixed(2), totalMs: +(performance.now() - started).toFixed(2), late },
      'metrics collected',
    );
    return { registry: merged, workers };
  }
}
