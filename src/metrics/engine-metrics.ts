/**
 * An engine's own registry: what belongs to the pool rather than to one worker (worker restarts) and,
 * when the engine is a process of its own, that process's Node.js metrics (memory, CPU, event loop).
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ENGINE } from './definitions.js';
import { counter } from './factory.js';
import type { MetricJson } from './json.js';
import { dropTotalGauges } from './main-metrics.js';

export class EngineMetrics {
  readonly registry = new Registry();
  private readonly restarts;

  /** @param processMetrics add the Node.js process metrics (an engine process; in-process the front has them) */
  constructor(processMetrics: boolean) {
    this.restarts = counter(ENGINE.workerRestarts, this.registry);
    this.restarts.inc(0);
    if (processMetrics) {
      collectDefaultMetrics({ register: this.registry });
      dropTotalGauges(this.registry);
    }
  }

  workerRestarted(): void {
    this.restarts.inc();
  }

  async json(): Promise<MetricJson[]> {
    return (await this.registry.getMetricsAsJSON()) as unknown as MetricJson[];
  }
}
