/** Readiness summed over engines, and which mode they run in, for /health, the routes, the metrics and the dashboard. */
import type { Engine } from './engine.js';

/** Whether the engines are processes of their own (--gpus/--engines), whose series carry engine labels. */
export function inEngineProcesses(engines: readonly Engine[]): boolean {
  return engines[0]!.labels !== undefined;
}

export function readyWorkers(engines: readonly Engine[]): number {
  return engines.reduce((sum, e) => sum + e.readyWorkers, 0);
}

export function totalWorkers(engines: readonly Engine[]): number {
  return engines.reduce((sum, e) => sum + e.workers, 0);
}
