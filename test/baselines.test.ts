/**
 * Counters of gone producers (dead workers, exited engine processes) stay in the merge: the helper keeps
 * the cumulative series only, per key, and a merge with the replacement's counts never goes backwards.
 */
import { describe, expect, it } from 'vitest';
import { Baselines } from '../src/metrics/baselines.js';
import { merge, type MetricJson } from '../src/metrics/json.js';

const counter = (value: number): MetricJson => ({
  name: 'c_total',
  help: 'c',
  type: 'counter',
  aggregator: 'sum',
  values: [{ labels: {}, value }],
});
const gauge = (value: number): MetricJson => ({ name: 'g', help: 'g', type: 'gauge', aggregator: 'sum', values: [{ labels: {}, value }] });

async function total(parts: MetricJson[][]): Promise<number> {
  const registry = merge(parts, 'text/plain; version=0.0.4; charset=utf-8');
  const json = (await registry.getMetricsAsJSON()) as unknown as MetricJson[];
  return Number(json.find((m) => m.name === 'c_total')?.values[0]?.value ?? 0);
}

describe('Baselines', () => {
  it('keeps only counters and histograms of a retired snapshot, per key, in order; ignores a missing one', () => {
    const b = new Baselines<number>();
    b.retire(0, [counter(5), gauge(9)]);
    b.retire(1, undefined);
    b.retire(0, [counter(7)]);
    b.retire(2, [gauge(1)]);
    expect(b.entries().map(([k, s]) => [k, s.map((m) => m.name)])).toEqual([
      [0, ['c_total']],
      [0, ['c_total']],
      [2, []],
    ]);
    expect(b.all()).toHaveLength(3);
  });

  it('a producer replaced twice: the merged counter only grows', async () => {
    const b = new Baselines<'engine'>();
    const seen: number[] = [];
    seen.push(await total([[counter(10)], ...b.all()])); // first process counted 10
    b.retire('engine', [counter(10)]);
    seen.push(await total(b.all())); // it died; nothing new yet
    seen.push(await total([[counter(3)], ...b.all()])); // the replacement counted 3
    b.retire('engine', [counter(4)]);
    seen.push(await total([[counter(1)], ...b.all()])); // and a third one 1
    expect(seen).toEqual([10, 10, 13, 15]);
  });
});
