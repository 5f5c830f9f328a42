/**
 * Builds the merged view a scrape returns: the main registry, every worker's registry (asked for over
 * the workers' channel, with a timeout; a late worker contributes its last snapshot), and the last
 * counters of every worker that died (so merged counters never go backwards), merged with prom-client's
 * AggregatorRegistry.aggregate().
 */
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { ModelPool } from '../pool/model-pool.js';
import type { MainMetrics } from './main-metrics.js';

export interface MetricJson {
  name: string;
  type: string;
  values: { labels: Record<string, string | number>; value?: number; metricName?: string }[];
}

export interface CollectorOptions {
  timeoutMs: number;
  /** Label worker series with worker="slot" instead of merging them. */
  perWorker: boolean;
}

export type ContentType = typeof Registry.PROMETHEUS_CONTENT_TYPE | typeof Registry.OPENMETRICS_CONTENT_TYPE;

/** Only cumulative metrics survive their worker: a dead worker's gauges mean nothing. */
function cumulative(snapshot: MetricJson[]): MetricJson[] {
  return snapshot.filter((m) => m.type === 'counter' || m.type === 'histogram');
}

function withWorkerLabel(snapshot: MetricJson[], slot: number): MetricJson[] {
  return snapshot.map((m) => ({ ...m, values: m.values.map((v) => ({ ...v, labels: { ...v.labels, worker: String(slot) } })) }));
}

export class MetricsCollector {
  private nextId = 1;
  /** Last snapshot of each live worker, by worker id. */
  private readonly last = new Map<number, MetricJson[]>();
  /** Cumulative snapshots of workers that died, by slot. */
  private readonly retired = new Map<number, MetricJson[][]>();
  private readonly waiting = new Map<number, (workerId: number, metrics: MetricJson[]) => void>();

  constructor(
    private readonly pool: ModelPool,
    private readonly main: MainMetrics,
    private readonly opts: CollectorOptions,
    private readonly log?: Logger,
  ) {
    pool.on('metrics', (reply) => {
      const metrics = reply.metrics as MetricJson[];
      this.last.set(reply.workerId, metrics);
      this.waiting.get(reply.id)?.(reply.workerId, metrics);
    });
    pool.on('retired', (worker) => {
      const snapshot = this.last.get(worker.workerId);
      this.last.delete(worker.workerId);
      if (snapshot) this.retired.set(worker.slot, [...(this.retired.get(worker.slot) ?? []), cumulative(snapshot)]);
      main.workerRestarted();
    });
  }

  /** Asks every ready worker for its registry; resolves with what arrived within the timeout. */
  private gatherWorkers(): Promise<Map<number, MetricJson[]>> {
    const ready = this.pool.readyList();
    const got = new Map<number, MetricJson[]>();
    if (ready.length === 0) return Promise.resolve(got);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(got);
      };
      const timer = setTimeout(done, this.opts.timeoutMs);
      this.waiting.set(id, (workerId, metrics) => {
        got.set(workerId, metrics);
        if (ready.every((w) => got.has(w.workerId))) done();
      });
      this.pool.broadcast({ type: 'collect', id });
    });
  }

  /** Each ready worker's latest snapshot (the one the last merge used, or newer), with its slot. */
  workerSnapshots(): { slot: number; workerId: number; metrics: MetricJson[] }[] {
    return this.pool.readyList().map((w) => ({ ...w, metrics: this.last.get(w.workerId) ?? [] }));
  }

  async registry(contentType: ContentType): Promise<Registry> {
    const started = performance.now();
    const fresh = await this.gatherWorkers();
    const gathered = performance.now();
    const parts: MetricJson[][] = [];
    let late = false;
    for (const worker of this.pool.readyList()) {
      const snapshot = fresh.get(worker.workerId) ?? this.last.get(worker.workerId);
      if (!fresh.has(worker.workerId)) late = true;
      if (snapshot) parts.push(this.opts.perWorker ? withWorkerLabel(snapshot, worker.slot) : snapshot);
    }
    for (const [slot, snapshots] of this.retired) {
      for (const s of snapshots) parts.push(this.opts.perWorker ? withWorkerLabel(s, slot) : s);
    }
    // Counted before the main registry is read, so this scrape already shows it.
    if (late) this.main.collectTimedOut();
    parts.unshift((await this.main.registry.getMetricsAsJSON()) as unknown as MetricJson[]);
    const merged = (AggregatorRegistry.aggregate as (arr: object[], type: ContentType) => Registry)(parts, contentType);
    this.log?.debug(
      { gatherMs: +(gathered - started).toFixed(2), totalMs: +(performance.now() - started).toFixed(2), late },
      'metrics collected',
    );
    return merged;
  }
}
