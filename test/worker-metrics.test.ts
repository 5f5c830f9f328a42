/**
 * A model worker's registry alone (no model, no thread): what one decode step of the batch loop reports
 * becomes the decode-step histograms and the speculative-decoding counters, whose series exist from the start.
 */
import { describe, expect, it } from 'vitest';
import { WORKER } from '../src/metrics/definitions.js';
import type { MetricJson } from '../src/metrics/json.js';
import { WorkerMetrics, type DecodeStepStats } from '../src/metrics/worker-metrics.js';

const SPEC = [WORKER.specDrafts.name, WORKER.specDraftTokens.name, WORKER.specAcceptedTokens.name];

function workerMetrics(): WorkerMetrics {
  return new WorkerMetrics({ modelId: 'chat', timeBuckets: [0.01, 0.1, 1], kvUsage: () => 0 });
}

/** Each metric's value (a histogram's: its `_sum` and `_count`) for model="chat". */
async function values(m: WorkerMetrics, names: string[]): Promise<Record<string, number | undefined>> {
  const json = (await m.snapshot()) as MetricJson[];
  const one = (name: string, sample = name) =>
    json.find((x) => x.name === name)?.values.find((v) => (v.metricName ?? name) === sample && v.labels.model === 'chat')?.value;
  return Object.fromEntries(
    names.flatMap((name) =>
      json.find((x) => x.name === name)?.type === 'histogram'
        ? [
            [`${name}_sum`, one(name, `${name}_sum`)],
            [`${name}_count`, one(name, `${name}_count`)],
          ]
        : [[name, one(name)]],
    ),
  );
}

describe('WorkerMetrics.step', () => {
  it('has the speculative-decoding counters at 0 before any step, so rate() sees the first drafts', async () => {
    expect(await values(workerMetrics(), SPEC)).toEqual(Object.fromEntries(SPEC.map((n) => [n, 0])));
  });

  it('adds drafts, draft tokens and accepted tokens of the steps that report them', async () => {
    const m = workerMetrics();
    const steps: DecodeStepStats[] = [
      { tokens: 9, sequences: 3, seconds: 0.02, drafts: 2, drafted: 6, accepted: 4 },
      { tokens: 4, sequences: 2, seconds: 0.01, drafts: 1, drafted: 2, accepted: 0 },
      { tokens: 2, sequences: 2, seconds: 0.01 }, // speculative decoding off: the fields are absent
      { tokens: 1, sequences: 1, seconds: 0.01, drafts: 0, drafted: 0, accepted: 0 },
    ];
    for (const s of steps) m.step(s);
    expect(await values(m, [...SPEC, WORKER.stepTokens.name, WORKER.stepSequences.name])).toEqual({
      [WORKER.specDrafts.name]: 3,
      [WORKER.specDraftTokens.name]: 8,
      [WORKER.specAcceptedTokens.name]: 4,
      // Draft tokens are decoded, so they are in the step's tokens as reported.
      [`${WORKER.stepTokens.name}_sum`]: 16,
      [`${WORKER.stepTokens.name}_count`]: 4,
      [`${WORKER.stepSequences.name}_sum`]: 8,
      [`${WORKER.stepSequences.name}_count`]: 4,
    });
  });

  it('ignores a count that is not above 0 rather than failing the step (prom-client throws on a negative one)', async () => {
    const m = workerMetrics();
    expect(() => m.step({ tokens: 1, sequences: 1, seconds: 0.01, drafts: -1, drafted: Number.NaN, accepted: -3 })).not.toThrow();
    expect(await values(m, SPEC)).toEqual(Object.fromEntries(SPEC.map((n) => [n, 0])));
  });
});
