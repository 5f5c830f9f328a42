/** Statistics of a benchmark level: percentiles (linear interpolation between closest ranks) and ratios. */

/** The p-th percentile (0..100) of the values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  if (p < 0 || p > 100) throw new RangeError('p must be between 0 and 100');
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

export function percentiles(values: readonly number[]): Percentiles {
  return { p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99) };
}

/** a ÷ b, NaN when b is 0 or either is not a number (a ratio must never look like a result when it is not). */
export function ratio(a: number, b: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

/** One request's measurements (milliseconds). */
export interface RequestSample {
  startMs: number;
  endMs: number;
  ttftMs: number;
  /** Gaps between consecutive content chunks (a chunk carries one token unless the server batches). */
  itlMs: number[];
  tokens: number;
  error?: string;
}

export interface LevelResult {
  endpoint: string;
  concurrency: number;
  requests: number;
  errors: number;
  seconds: number;
  requestsPerSecond: number;
  tokensPerSecond: number;
  ttftMs: Percentiles;
  itlMs: Percentiles;
  e2eMs: { p50: number; p99: number };
}

export function summarize(endpoint: string, concurrency: number, samples: readonly RequestSample[]): LevelResult {
  const ok = samples.filter((s) => !s.error);
  const start = Math.min(...samples.map((s) => s.startMs));
  const end = Math.max(...samples.map((s) => s.endMs));
  const seconds = samples.length === 0 ? 0 : (end - start) / 1000;
  const tokens = ok.reduce((sum, s) => sum + s.tokens, 0);
  const e2e = ok.map((s) => s.endMs - s.startMs);
  return {
    endpoint,
    concurrency,
    requests: samples.length,
    errors: samples.length - ok.length,
    seconds,
    requestsPerSecond: ratio(ok.length, seconds),
    tokensPerSecond: ratio(tokens, seconds),
    ttftMs: percentiles(ok.map((s) => s.ttftMs)),
    itlMs: percentiles(ok.flatMap((s) => s.itlMs)),
    e2eMs: { p50: percentile(e2e, 50), p99: percentile(e2e, 99) },
  };
}
