/**
 * Turns one merged registry (the very one /metrics serves, as getMetricsAsJSON) into a Reading: the
 * cumulative counters and histogram buckets and the current gauges the dashboard needs, of the whole server
 * or of one served model (its `model` label). Rates and percentiles come later, from the difference of two
 * readings (history.ts).
 */
import type { MetricJson } from '../metrics/json.js';
import {
  ENGINE,
  FINISH_REASONS,
  GENERATION_ENDPOINTS,
  MAIN,
  REJECT_REASONS,
  WORKER,
  type FinishOutcome,
  type RejectReason,
  type StepTotals,
} from '../metrics/definitions.js';

type Labels = Record<string, string | number>;
type Match = (labels: Labels) => boolean;

/** A histogram's cumulative bucket counts, `le` ascending and ending with Infinity. */
export interface Buckets {
  le: number[];
  counts: number[];
}

interface GpuReading {
  device: string;
  name: string | null;
  memoryUsedBytes: number | null;
  memoryTotalBytes: number | null;
  utilizationRatio: number | null;
}

interface WorkerReading {
  model: string;
  slot: number;
  workerId: number;
  kvCacheUsage: number | null;
  generationTokens: number;
}

export interface Reading {
  /** Epoch milliseconds. */
  t: number;
  /**
   * The whole server: API requests (qwen_inference_request_total). One model: its generation requests that
   * ended or were refused (qwen_requests_finished_total + qwen_requests_rejected_total of the model), since
   * the HTTP request counter has no model label.
   */
  requests: number;
  promptTokens: number;
  generationTokens: number;
  /** Speculative decoding: draft tokens verified, and those the model's own samples confirmed. */
  draftTokens: number;
  acceptedTokens: number;
  finished: Record<FinishOutcome, number>;
  rejected: Record<RejectReason, number>;
  workerRestarts: number;
  /** Server-wide (no model label): scrapes in which a worker answered late. */
  collectTimeouts: number;
  /** Request duration of the generation endpoints; server-wide (qwen_inference_duration_seconds has no model label). */
  latency: Buckets;
  ttft: Buckets;
  itl: Buckets;
  /** The workers' decode-step totals (batching). */
  steps: StepTotals;
  running: number;
  waiting: number;
  /** Sequences of the ready workers (qwen_sequences_capacity): how many requests may run at once now. */
  capacity: number;
  /** Server-wide: API requests in flight (qwen_active_connections has no model label). */
  active: number;
  workersReady: number;
  kvCacheUsage: number | null;
  /** Server-wide: a GPU is not one model's. */
  gpus: GpuReading[];
  workers: WorkerReading[];
}

const any: Match = () => true;

function samples(metrics: MetricJson[], name: string, sample = name, match: Match = any): { labels: Labels; value: number }[] {
  const m = metrics.find((x) => x.name === name);
  if (!m) return [];
  return m.values
    .filter((v) => (v.metricName ?? name) === sample && match(v.labels))
    .map((v) => ({ labels: v.labels, value: Number(v.value ?? 0) }));
}

/** Sum over every series of `name` (e.g. across models, endpoints or per-worker labels) that matches. */
function total(metrics: MetricJson[], name: string, match: Match = any): number {
  return samples(metrics, name, name, match).reduce((s, v) => s + v.value, 0);
}

function mean(metrics: MetricJson[], name: string, match: Match = any): number | null {
  const v = samples(metrics, name, name, match);
  return v.length === 0 ? null : v.reduce((s, x) => s + x.value, 0) / v.length;
}

/** The `_sum` (or `_count`) of histogram `name`, over every series that matches. */
function histogramTotal(metrics: MetricJson[], name: string, part: 'sum' | 'count', match: Match = any): number {
  return samples(metrics, name, `${name}_${part}`, match).reduce((s, v) => s + v.value, 0);
}

/** The buckets of histogram `name`, summed over the series that match. */
function buckets(metrics: MetricJson[], name: string, match: Match = any): Buckets {
  const byLe = new Map<number, number>();
  for (const { labels, value } of samples(metrics, name, `${name}_bucket`, match)) {
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + value);
  }
  const le = [...byLe.keys()].sort((a, b) => a - b);
  return { le, counts: le.map((b) => byLe.get(b)!) };
}

function gpus(metrics: MetricJson[]): GpuReading[] {
  const one = (name: string, device: string) => {
    const v = samples(metrics, name, name, (l) => l.device === device);
    return v.length === 0 ? null : v[0]!.value;
  };
  const devices = new Set(
    [MAIN.gpuInfo, MAIN.gpuMemoryUsed, MAIN.gpuMemoryTotal, MAIN.gpuUtilization].flatMap((d) =>
      samples(metrics, d.name).map((s) => String(s.labels.device)),
    ),
  );
  return [...devices].sort().map((device) => ({
    device,
    name: samples(metrics, MAIN.gpuInfo.name, MAIN.gpuInfo.name, (l) => l.device === device).map((s) => String(s.labels.name))[0] ?? null,
    memoryUsedBytes: one(MAIN.gpuMemoryUsed.name, device),
    memoryTotalBytes: one(MAIN.gpuMemoryTotal.name, device),
    utilizationRatio: one(MAIN.gpuUtilization.name, device),
  }));
}

/**
 * @param model the served model to read (the series whose `model` label is its id), or undefined for the whole
 *   server. Series without a model label (HTTP requests and their latency, in-flight requests, scrape timeouts,
 *   GPUs) are read whole either way: they are server-wide.
 */
export function readRegistry(
  t: number,
  metrics: MetricJson[],
  workers: { model: string; slot: number; workerId: number; metrics: MetricJson[] }[],
  model?: string,
): Reading {
  const mine: Match = model === undefined ? any : (l) => l.model === model;
  const by = <K extends string>(name: string, label: string, keys: readonly K[]) =>
    Object.fromEntries(keys.map((k) => [k, total(metrics, name, (l) => l[label] === k && mine(l))])) as Record<K, number>;
  const finished = by(MAIN.finished.name, 'finish_reason', FINISH_REASONS);
  const rejected = by(MAIN.rejected.name, 'reason', REJECT_REASONS);
  const sum = (r: Record<string, number>) => Object.values(r).reduce((s, v) => s + v, 0);
  return {
    t,
    requests: model === undefined ? total(metrics, MAIN.requests.name) : sum(finished) + sum(rejected),
    promptTokens: total(metrics, WORKER.promptTokens.name, mine),
    generationTokens: total(metrics, WORKER.generationTokens.name, mine),
    draftTokens: total(metrics, WORKER.specDraftTokens.name, mine),
    acceptedTokens: total(metrics, WORKER.specAcceptedTokens.name, mine),
    finished,
    rejected,
    workerRestarts: total(metrics, ENGINE.workerRestarts.name, mine),
    collectTimeouts: total(metrics, MAIN.collectTimeouts.name),
    latency: buckets(metrics, MAIN.duration.name, (l) => l.method === 'POST' && GENERATION_ENDPOINTS.has(String(l.endpoint))),
    ttft: buckets(metrics, WORKER.ttft.name, mine),
    itl: buckets(metrics, WORKER.itl.name, mine),
    steps: {
      steps: histogramTotal(metrics, WORKER.stepTokens.name, 'count', mine),
      tokens: histogramTotal(metrics, WORKER.stepTokens.name, 'sum', mine),
      sequences: histogramTotal(metrics, WORKER.stepSequences.name, 'sum', mine),
      seconds: histogramTotal(metrics, WORKER.stepTime.name, 'sum', mine),
    },
    running: total(metrics, MAIN.running.name, mine),
    waiting: total(metrics, MAIN.waiting.name, mine),
    capacity: total(metrics, MAIN.readySequences.name, mine),
    active: total(metrics, MAIN.active.name),
    workersReady: total(metrics, MAIN.workersReady.name, mine),
    kvCacheUsage: mean(metrics, WORKER.kvUsage.name, mine),
    gpus: gpus(metrics),
    workers: workers
      .filter((w) => model === undefined || w.model === model)
      .map((w) => ({
        model: w.model,
        slot: w.slot,
        workerId: w.workerId,
        kvCacheUsage: mean(w.metrics, WORKER.kvUsage.name),
        generationTokens: total(w.metrics, WORKER.generationTokens.name),
      })),
  };
}

/**
 * later − earlier, bucket by bucket; undefined when nothing was observed in between or the layouts
 * differ. A histogram absent earlier (no worker was ready yet) counts as empty.
 */
export function bucketDelta(later: Buckets, earlier: Buckets): Buckets | undefined {
  const base = earlier.le.length === 0 ? { le: later.le, counts: later.le.map(() => 0) } : earlier;
  if (later.le.length !== base.le.length || later.le.some((b, i) => b !== base.le[i])) return undefined;
  const counts = later.counts.map((c, i) => Math.max(0, c - base.counts[i]!));
  return counts.at(-1) ? { le: later.le, counts } : undefined;
}

/**
 * The q-quantile of a histogram, as Prometheus' histogram_quantile() computes it: linear interpolation
 * inside the bucket holding the rank (from 0 for the first bucket); a rank in the +Inf bucket gives the
 * highest finite bound. Null when the histogram is empty.
 */
export function quantile(q: number, h: Buckets | undefined): number | null {
  if (!h || h.counts.length === 0) return null;
  const count = h.counts.at(-1)!;
  if (count === 0) return null;
  const rank = q * count;
  const i = h.counts.findIndex((c) => c >= rank);
  if (h.le[i] === Infinity) return i > 0 ? h.le[i - 1]! : null;
  const lower = i === 0 ? 0 : h.le[i - 1]!;
  const below = i === 0 ? 0 : h.counts[i - 1]!;
  const inBucket = h.counts[i]! - below;
  return inBucket === 0 ? h.le[i]! : lower + (h.le[i]! - lower) * ((rank - below) / inBucket);
}
