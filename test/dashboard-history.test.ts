/**
 * The dashboard's history without a server: workers' registries merged as a scrape merges them, sampled by
 * MetricsHistory at set times, read back as points. Speculative decoding: draft and accepted tokens per second
 * over each interval, and the acceptance (accepted ÷ draft tokens) over the window, per model and in all.
 */
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MetricsHistory, WINDOW_SECONDS, type Point } from '../src/dashboard/history.js';
import type { MetricsCollector } from '../src/engine/metrics-collector.js';
import { merge, type MetricJson } from '../src/metrics/json.js';
import { WorkerMetrics } from '../src/metrics/worker-metrics.js';

const T0 = Date.UTC(2025, 0, 1);

/** Two models' workers, and a history that samples their merged registries at the times the test sets. */
function setup() {
  const worker = (modelId: string) => new WorkerMetrics({ modelId, timeBuckets: [0.01, 0.1, 1], kvUsage: () => 0 });
  const chat = worker('chat');
  const code = worker('code');
  const collector = {
    collect: async () => ({
      registry: merge([(await chat.snapshot()) as MetricJson[], (await code.snapshot()) as MetricJson[]]),
      workers: [],
    }),
  } as unknown as MetricsCollector;
  // A failed sample is logged and swallowed: here it fails the test instead.
  const log = {
    warn: (o: { err?: unknown }) => {
      throw o.err;
    },
  } as unknown as Logger;
  const history = new MetricsHistory(collector, ['chat', 'code'], log);
  const sampleAt = async (seconds: number) => {
    vi.setSystemTime(T0 + seconds * 1000);
    await history.sample();
  };
  return { chat, code, history, sampleAt };
}

const spec = (p: Point) => [p.draftTokensPerSecond, p.acceptedTokensPerSecond, p.draftAcceptanceRatio];

describe('speculative decoding in the dashboard history', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('rates per interval, acceptance over the window; null acceptance (the page shows —) while nothing was drafted', async () => {
    const { chat, code, history, sampleAt } = setup();
    await sampleAt(0);
    expect(spec(history.latest('chat')!.point)).toEqual([null, null, null]);

    chat.step({ tokens: 9, sequences: 3, seconds: 0.02, drafts: 2, drafted: 6, accepted: 4 });
    code.step({ tokens: 2, sequences: 2, seconds: 0.01 }); // a model without speculative decoding
    await sampleAt(2);
    expect(spec(history.latest('chat')!.point)).toEqual([3, 2, 4 / 6]);
    expect(spec(history.latest('code')!.point)).toEqual([0, 0, null]);
    expect(spec(history.latest()!.point)).toEqual([3, 2, 4 / 6]);

    // Nothing accepted this time: the interval's rates say so, the window's acceptance takes both steps.
    chat.step({ tokens: 5, sequences: 1, seconds: 0.01, drafts: 1, drafted: 4, accepted: 0 });
    await sampleAt(4);
    expect(spec(history.latest('chat')!.point)).toEqual([2, 0, 4 / 10]);

    // Nothing drafted since. The window slides past the first step (0 of the 4 tokens left in it were
    // accepted: 0, not null), then past the second: no acceptance to show.
    await sampleAt(2 + WINDOW_SECONDS);
    expect(spec(history.latest('chat')!.point)).toEqual([0, 0, 0]);
    await sampleAt(4 + WINDOW_SECONDS);
    expect(spec(history.latest('chat')!.point)).toEqual([0, 0, null]);

    const reading = history.latest('chat')!.reading;
    expect([reading.draftTokens, reading.acceptedTokens]).toEqual([10, 4]);
    expect(history.latest('code')!.reading.draftTokens).toBe(0);
  });
});
