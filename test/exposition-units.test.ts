/**
 * Pure pieces of the metrics path, alone: the OpenMetrics counter rename and the dashboard's bucket
 * deltas and quantiles (the end-to-end tests check them only through real traffic).
 */
import { describe, expect, it } from 'vitest';
import { bucketDelta, quantile } from '../src/dashboard/read.js';
import { fixOpenMetricsCounters } from '../src/metrics/exposition.js';

describe('fixOpenMetricsCounters', () => {
  it('renames prom-client counter families x_total to x, and samples x_total_total to x_total', () => {
    const text = [
      '# HELP qwen_requests_finished_total Finished',
      '# TYPE qwen_requests_finished_total counter',
      'qwen_requests_finished_total_total{finish_reason="stop"} 3',
      'qwen_requests_finished_total_created{finish_reason="stop"} 1700000000',
      '# HELP qwen_active_connections In flight',
      '# TYPE qwen_active_connections gauge',
      'qwen_active_connections 1',
      '# EOF',
    ].join('\n');
    expect(fixOpenMetricsCounters(text).split('\n')).toEqual([
      '# HELP qwen_requests_finished Finished',
      '# TYPE qwen_requests_finished counter',
      'qwen_requests_finished_total{finish_reason="stop"} 3',
      'qwen_requests_finished_total_created{finish_reason="stop"} 1700000000',
      '# HELP qwen_active_connections In flight',
      '# TYPE qwen_active_connections gauge',
      'qwen_active_connections 1',
      '# EOF',
    ]);
  });

  it('leaves text without such counters untouched, and a gauge named x_total alone', () => {
    const text = '# TYPE odd_total gauge\nodd_total 2\n# EOF';
    expect(fixOpenMetricsCounters(text)).toBe(text);
  });
});

describe('dashboard bucket deltas and quantiles', () => {
  const le = [0.1, 0.5, Infinity];

  it('subtracts bucket by bucket; nothing new is undefined; an absent earlier histogram counts as empty', () => {
    expect(bucketDelta({ le, counts: [2, 5, 6] }, { le, counts: [1, 3, 3] })).toEqual({ le, counts: [1, 2, 3] });
    expect(bucketDelta({ le, counts: [2, 5, 6] }, { le, counts: [2, 5, 6] })).toBeUndefined();
    expect(bucketDelta({ le, counts: [1, 1, 1] }, { le: [], counts: [] })).toEqual({ le, counts: [1, 1, 1] });
    // Different layouts (another --latency-buckets after a restart) give no delta rather than a wrong one.
    expect(bucketDelta({ le, counts: [1, 1, 1] }, { le: [0.2, Infinity], counts: [0, 0] })).toBeUndefined();
    // A counter reset (a replaced process without a baseline) never goes negative.
    expect(bucketDelta({ le, counts: [0, 1, 2] }, { le, counts: [1, 1, 1] })).toEqual({ le, counts: [0, 0, 1] });
  });

  it('interpolates inside the bucket like histogram_quantile, +Inf gives the highest finite bound', () => {
    const h = { le, counts: [4, 8, 10] };
    expect(quantile(0.25, h)).toBeCloseTo(0.0625, 10); // rank 2.5 of 10: 2.5 of 4 in [0, 0.1]
    expect(quantile(0.75, h)).toBeCloseTo(0.45, 10); // rank 7.5: 3.5 of 4 in (0.1, 0.5]
    expect(quantile(0.99, h)).toBe(0.5); // rank 9.9 falls in +Inf
    expect(quantile(0.5, undefined)).toBeNull();
    expect(quantile(0.5, { le, counts: [0, 0, 0] })).toBeNull();
  });
});
