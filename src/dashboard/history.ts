/**
 * The dashboard's short memory. Every 2 s it takes the same merged registry a /metrics scrape gets
 * (MetricsCollector.collect()), reads it (read.ts) and keeps derived points for the last 15 minutes:
 * rates from counter deltas between consecutive samples, percentiles from histogram bucket deltas over
 * the last 30 s. /metrics stays the one source of truth; this only remembers what it said.
 *
 * It keeps one track for the whole server and one per served model, all read from that one collection
 * (the configured models, at most 16: the server's own limit). A track keeps its points for the whole
 * history but its full readings only as far back as the percentile window needs.
 */
import type { Logger } from 'pino';
import type { MetricsCollector } from '../engine/metrics-collector.js';
import { FINISH_REASONS, REJECT_REASONS, type FinishOutcome, type RejectReason } from '../metrics/definitions.js';
import { PROMETHEUS_TEXT } from '../metrics/json.js';
import { bucketDelta, quantile, readRegistry, type Buckets, type Reading } from './read.js';

export const INTERVAL_SECONDS = 2;
export const HISTORY_SECONDS = 900;
export const WINDOW_SECONDS = 30;
const POINTS = HISTORY_SECONDS / INTERVAL_SECONDS;

/** One sample of the history; rates are per second over the interval since the previous point (null for the first). */
export interface Point {
  t: number;
  requestsPerSecond: number | null;
  promptTokensPerSecond: number | null;
  generationTokensPerSecond: number | null;
  errorsPerSecond: number | null;
  latencyP50: number | null;
  latencyP95: number | null;
  latencyP99: number | null;
  ttftP50: number | null;
  ttftP95: number | null;
  ttftP99: number | null;
  itlP50: number | null;
  itlP95: number | null;
  /** Means over the interval's decode steps (null when no step ran). */
  tokensPerStep: number | null;
  sequencesPerStep: number | null;
  stepSeconds: number | null;
  /** Speculative decoding: draft tokens verified and accepted per second over the interval. */
  draftTokensPerSecond: number | null;
  acceptedTokensPerSecond: number | null;
  /** Accepted ÷ draft tokens over the last WINDOW_SECONDS (0-1); null when nothing was drafted in it. */
  draftAcceptanceRatio: number | null;
  running: number;
  waiting: number;
  /** Sequences of the ready workers (qwen_sequences_capacity). */
  capacity: number;
  activeRequests: number;
  workersReady: number;
  kvCacheUsage: number | null;
  gpus: { device: string; memoryUsedBytes: number | null; memoryTotalBytes: number | null; utilizationRatio: number | null }[];
}

export interface Sample {
  reading: Reading;
  point: Point;
}

/** Failed requests: generations that ended in error plus every refusal. */
const errors = (r: Reading) => r.finished.error + REJECT_REASONS.reduce((s, k) => s + r.rejected[k], 0);

function derive(reading: Reading, previous: Reading | undefined, windowStart: Reading | undefined): Point {
  const seconds = previous ? (reading.t - previous.t) / 1000 : 0;
  const rate = (f: (r: Reading) => number) => (previous && seconds > 0 ? Math.max(0, f(reading) - f(previous)) / seconds : null);
  const recent = (f: (r: Reading) => Buckets) => (windowStart ? bucketDelta(f(reading), f(windowStart)) : undefined);
  const latency = recent((r) => r.latency);
  const ttft = recent((r) => r.ttft);
  const itl = recent((r) => r.itl);
  const steps = previous ? reading.steps.steps - previous.steps.steps : 0;
  const perStep = (f: (r: Reading) => number) => (previous && steps > 0 ? (f(reading) - f(previous)) / steps : null);
  // Over the window like the percentiles: a ratio of two 2 s deltas of a few tokens each would jump around.
  const windowed = (f: (r: Reading) => number) => (windowStart ? Math.max(0, f(reading) - f(windowStart)) : 0);
  const drafted = windowed((r) => r.draftTokens);
  return {
    t: reading.t,
    requestsPerSecond: rate((r) => r.requests),
    promptTokensPerSecond: rate((r) => r.promptTokens),
    generationTokensPerSecond: rate((r) => r.generationTokens),
    errorsPerSecond: rate(errors),
    latencyP50: quantile(0.5, latency),
    latencyP95: quantile(0.95, latency),
    latencyP99: quantile(0.99, latency),
    ttftP50: quantile(0.5, ttft),
    ttftP95: quantile(0.95, ttft),
    ttftP99: quantile(0.99, ttft),
    itlP50: quantile(0.5, itl),
    itlP95: quantile(0.95, itl),
    tokensPerStep: perStep((r) => r.steps.tokens),
    sequencesPerStep: perStep((r) => r.steps.sequences),
    stepSeconds: perStep((r) => r.steps.seconds),
    draftTokensPerSecond: rate((r) => r.draftTokens),
    acceptedTokensPerSecond: rate((r) => r.acceptedTokens),
    draftAcceptanceRatio: drafted > 0 ? windowed((r) => r.acceptedTokens) / drafted : null,
    running: reading.running,
    waiting: reading.waiting,
    capacity: reading.capacity,
    activeRequests: reading.active,
    workersReady: reading.workersReady,
    kvCacheUsage: reading.kvCacheUsage,
    gpus: reading.gpus.map(({ name: _name, ...g }) => g),
  };
}

/** The history of one scope (the whole server, or one model). */
class Track {
  private readonly kept: Point[] = [];
  /** The newest reading at least WINDOW_SECONDS old and every newer one: what windows and rates start from. */
  private readonly readings: Reading[] = [];

  add(reading: Reading): void {
    const point = derive(reading, this.readings.at(-1), this.windowStart(reading.t));
    this.readings.push(reading);
    while (this.readings.length > 1 && this.readings[1]!.t <= reading.t - WINDOW_SECONDS * 1000) this.readings.shift();
    this.kept.push(point);
    if (this.kept.length > POINTS) this.kept.shift();
  }

  /** The newest reading at least WINDOW_SECONDS older than t, else the oldest one kept. */
  private windowStart(t: number): Reading | undefined {
    let start = this.readings[0];
    for (const r of this.readings) if (r.t <= t - WINDOW_SECONDS * 1000) start = r;
    return start;
  }

  latest(): Sample | undefined {
    const reading = this.readings.at(-1);
    return reading && { reading, point: this.kept.at(-1)! };
  }

  /** The two newest readings, oldest first (fewer before the second sample). */
  lastTwo(): Reading[] {
    return this.readings.slice(-2);
  }

  points(since: number): Point[] {
    return this.kept.filter((p) => p.t > since);
  }

  recent(): { finished: Record<FinishOutcome, number>; rejected: Record<RejectReason, number> } | undefined {
    const last = this.readings.at(-1);
    const start = last && this.windowStart(last.t);
    if (!last || !start) return undefined;
    const diff = <K extends string>(keys: readonly K[], a: Record<K, number>, b: Record<K, number>) =>
      Object.fromEntries(keys.map((k) => [k, Math.max(0, a[k] - b[k])])) as Record<K, number>;
    return { finished: diff(FINISH_REASONS, last.finished, start.finished), rejected: diff(REJECT_REASONS, last.rejected, start.rejected) };
  }
}

export class MetricsHistory {
  private readonly server = new Track();
  private readonly byModel: Map<string, Track>;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  /** @param models the served models' ids, each of which gets a track of its own */
  constructor(
    private readonly collector: MetricsCollector,
    models: readonly string[],
    private readonly log: Logger,
  ) {
    // As many as the server serves: the configuration bounds them (config.ts).
    this.byModel = new Map(models.map((id) => [id, new Track()]));
  }

  start(): void {
    // sample() logs its own failures and never rejects; the handler is for a fault in that handling.
    const tick = () => {
      this.sample().catch((err: unknown) => this.log.warn({ err }, 'dashboard sample failed'));
    };
    tick();
    this.timer = setInterval(tick, INTERVAL_SECONDS * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one sample now (skipped while the previous one is still collecting): one collection, read per track. */
  async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const { registry, workers } = await this.collector.collect(PROMETHEUS_TEXT);
      const metrics = (await registry.getMetricsAsJSON()) as never;
      const t = Date.now();
      this.server.add(readRegistry(t, metrics, workers));
      for (const [model, track] of this.byModel) track.add(readRegistry(t, metrics, workers, model));
    } catch (err) {
      this.log.warn({ err }, 'dashboard sample failed');
    } finally {
      this.busy = false;
    }
  }

  private track(model: string | undefined): Track | undefined {
    return model === undefined ? this.server : this.byModel.get(model);
  }

  /** The newest sample of the whole server, or of `model`. */
  latest(model?: string): Sample | undefined {
    return this.track(model)?.latest();
  }

  /** Points newer than `since` (epoch ms), of the whole server or of `model`. */
  points(since = 0, model?: string): Point[] {
    return this.track(model)?.points(since) ?? [];
  }

  /** Finish reasons and refusals counted over the last WINDOW_SECONDS, of the whole server or of `model`. */
  recent(model?: string): { finished: Record<FinishOutcome, number>; rejected: Record<RejectReason, number> } | undefined {
    return this.track(model)?.recent();
  }

  /** Per-worker tokens/s over the last interval, by worker id (unique across models). */
  workerRates(): Map<number, number> {
    const [prev, last] = this.server.lastTwo();
    const out = new Map<number, number>();
    if (!prev || !last || last.t <= prev.t) return out;
    for (const w of last.workers) {
      const before = prev.workers.find((p) => p.workerId === w.workerId);
      if (before) out.set(w.workerId, Math.max(0, w.generationTokens - before.generationTokens) / ((last.t - prev.t) / 1000));
    }
    return out;
  }
}
