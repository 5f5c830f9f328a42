/**
 * Counters of producers that are gone — a worker that died, an engine process that exited — kept so
 * that merged totals never go backwards: the cumulative part (counters, histograms) of each gone
 * producer's last snapshot stays in every later merge, and its replacement's counts add to it.
 */
import { cumulative, type MetricJson } from './json.js';

export class Baselines<K> {
  private readonly kept = new Map<K, MetricJson[][]>();

  /** Keeps a gone producer's last snapshot under `key` (a slot; several per key add up). */
  retire(key: K, lastSnapshot: MetricJson[] | undefined): void {
    if (!lastSnapshot) return;
    this.kept.set(key, [...(this.kept.get(key) ?? []), cumulative(lastSnapshot)]);
  }

  /** Every kept snapshot with its key, in the order they were retired per key. */
  entries(): [K, MetricJson[]][] {
    return [...this.kept].flatMap(([key, snapshots]) => snapshots.map((s): [K, MetricJson[]] => [key, s]));
  }

  /** Every kept snapshot. */
  all(): MetricJson[][] {
    return this.entries().map(([, s]) => s);
  }
}
