/**
 * Builds the merged view a scrape returns: the front's registry and every engine's collection (its
 * workers' registries and baselines and its own registry, plus, for an engine process, the counters
 * of its earlier processes), merged with AggregatorRegistry.aggregate(). Every series from a model's
 * engines carries its `model` label, and an engine process's its `engine` and `device` labels.
 *
 * An on-demand model's engines are closed when it is unloaded: retire() collects them one last time and
 * keeps their counters as a baseline, so the merged totals never go backwards across loads.
 */
import type { Logger } from 'pino';
import { Baselines } from '../metrics/baselines.js';
import type { ExemplarStore } from '../metrics/exemplars.js';
import type { Collection, MetricsSource } from '../metrics/exposition.js';
import { merge, withLabels, type ContentType, type MetricJson } from '../metrics/json.js';
import type { MainMetrics } from '../metrics/main-metrics.js';
import type { Engine, EngineCollection, WorkerSnapshot } from './engine.js';

export interface CollectorOptions {
  /** How long a scrape waits for each worker. */
  timeoutMs: number;
}

/** A served model's engines now (none while an on-demand model is unloaded). */
export interface ModelEngines {
  model: string;
  engines: readonly Engine[];
}

/** A ready worker's snapshot for the dashboard's worker table, with its model. */
interface ModelWorkerSnapshot extends WorkerSnapshot {
  model: string;
}

/** One collection: the merged registry and, from the same collection, each ready worker's snapshot. */
export interface Collected extends Collection {
  /** Each ready worker's snapshot, with a slot unique across the model's engines (the dashboard's worker table). */
  workers: ModelWorkerSnapshot[];
}

export class MetricsCollector implements MetricsSource {
  /** Counters of unloaded engines, labelled as they were. */
  private readonly retired = new Baselines<string>();

  constructor(
    private readonly models: () => readonly ModelEngines[],
    private readonly main: MainMetrics,
    private readonly opts: CollectorOptions,
    private readonly log?: Logger,
  ) {}

  /** The main thread's exemplars, which a scrape in OpenMetrics writes beside the merged buckets. */
  get exemplars(): ExemplarStore {
    return this.main.exemplars;
  }

  /**
   * Collects every engine once. The worker snapshots come back with the registry they were merged into,
   * so two concurrent collections (a scrape and a dashboard sample) cannot swap each other's.
   */
  async collect(contentType: ContentType): Promise<Collected> {
    const started = performance.now();
    // Read together, before any await: an engine is either live here or in the baselines, never both.
    const baselines = this.retired.all();
    const engines = this.models().flatMap((m) => m.engines.map((engine) => ({ model: m.model, engine })));
    const collections = await Promise.all(engines.map((e) => e.engine.collect(this.opts.timeoutMs)));
    const gathered = performance.now();
    const late = collections.some((c) => c.late);
    // Counted before the front's registry is read, so this scrape already shows it.
    if (late) this.main.collectTimedOut();
    if (collections.some((c) => c.failed)) this.main.collectFailed();
    const parts: MetricJson[][] = [(await this.main.registry.getMetricsAsJSON()) as unknown as MetricJson[], ...baselines];
    collections.forEach((c, i) => parts.push(...labelled(c, engines[i]!.model, engines[i]!.engine)));
    const workers = collections.flatMap((c, i) => {
      const { model, engine } = engines[i]!;
      // Slots and worker ids are per engine; the dashboard lists a model's workers of all engines in one table.
      return c.workers.map((w) => ({
        ...w,
        model,
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

  /**
   * Keeps the counters of a model's engines that are about to be closed (an on-demand model unloading, idle).
   * Call it, then stop listing the engines before the next collection begins.
   */
  async retire(model: string, engines: readonly Engine[]): Promise<void> {
    const collections = await Promise.all(engines.map((e) => e.collect(this.opts.timeoutMs)));
    collections.forEach((c, i) => {
      for (const part of labelled(c, model, engines[i]!)) this.retired.retire(model, part);
    });
  }
}

/** An engine's parts with its model's label and, for an engine process, its engine and device labels. */
function labelled(c: EngineCollection, model: string, engine: Engine): MetricJson[][] {
  return c.parts.map((p) => withLabels(p, { model, ...engine.labels }));
}
