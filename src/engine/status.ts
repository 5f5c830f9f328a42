/** Readiness summed over engines, for /health, the routes, the metrics and the dashboard. */
import type { Engine } from './engine.js';

export function readyWorkers(engines: readonly Engine[]): number {
  return engines.reduce((sum, e) => sum + e.readyWorkers, 0);
}

export function totalWorkers(engines: readonly Engine[]): number {
  return engines.reduce((sum, e) => sum + e.workers, 0);
}
