/**
 * A model worker's own registry: token counters and per-token latencies, observed where the tokens
 * are produced. The generation code reports plain events to a RequestObserver; this file alone turns
 * them into metrics.
 */
import { Registry } from 'prom-client';
import { nowMs } from '../shared/protocol.js';
import { LOOP_FAILURE_KINDS, STEP_BUCKETS, TOKEN_BUCKETS, WORKER, type LoopFailureKind } from './definitions.js';
import { counter, gauge, histogram } from './factory.js';

export interface RequestObserver {
  /** The prompt fit and the request holds a sequence. */
  started(promptTokens: number): void;
  /** One token was generated. */
  token(): void;
  /** The request ended (any way) after `completionTokens` tokens. */
  finished(completionTokens: number): void;
}

export interface WorkerMetricsOptions {
  modelId: string;
  timeBuckets: number[];
  /** Current KV-cache fill (0-1), read at collection time. */
  kvUsage: () => number;
}

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly labels: { model: string };
  private readonly promptTokens;
  private readonly generationTokens;
  private readonly ttft;
  private readonly itl;
  private readonly promptPerRequest;
  private readonly generationPerRequest;
  private readonly loadSeconds;
  private readonly stepTokens;
  private readonly stepSequences;
  private readonly stepTime;
  private readonly loopFailures;

  constructor(opts: WorkerMetricsOptions) {
    const r = this.registry;
    this.labels = { model: opts.modelId };
    this.promptTokens = counter(WORKER.promptTokens, r);
    this.generationTokens = counter(WORKER.generationTokens, r);
    this.ttft = histogram(WORKER.ttft, r, opts.timeBuckets);
    this.itl = histogram(WORKER.itl, r, opts.timeBuckets);
    this.promptPerRequest = histogram(WORKER.promptTokensPerRequest, r, TOKEN_BUCKETS);
    this.generationPerRequest = histogram(WORKER.generationTokensPerRequest, r, TOKEN_BUCKETS);
    this.loadSeconds = gauge(WORKER.loadSeconds, r);
    this.stepTokens = histogram(WORKER.stepTokens, r, STEP_BUCKETS);
    this.stepSequences = histogram(WORKER.stepSequences, r, STEP_BUCKETS);
    this.stepTime = histogram(WORKER.stepTime, r, opts.timeBuckets);
    this.loopFailures = counter(WORKER.loopFailures, r);
    const labels = this.labels;
    gauge(WORKER.kvUsage, r, function () {
      this.set(labels, opts.kvUsage());
    });
    // Series exist from the start, so rate() and histogram_quantile() see the first requests.
    this.promptTokens.inc(labels, 0);
    this.generationTokens.inc(labels, 0);
    for (const kind of LOOP_FAILURE_KINDS) this.loopFailures.inc({ ...labels, kind }, 0);
    for (const h of [
      this.ttft,
      this.itl,
      this.promptPerRequest,
      this.generationPerRequest,
      this.stepTokens,
      this.stepSequences,
      this.stepTime,
    ])
      h.zero(labels);
  }

  setLoadSeconds(seconds: number): void {
    this.loadSeconds.set(this.labels, seconds);
  }

  /** One decode step of the worker's batch loop. */
  step(stats: { tokens: number; sequences: number; seconds: number }): void {
    this.stepTokens.observe(this.labels, stats.tokens);
    this.stepSequences.observe(this.labels, stats.sequences);
    this.stepTime.observe(this.labels, stats.seconds);
  }

  /** A failure in the batch loop (it failed the requests it concerned; the loop went on). */
  loopFailed(kind: LoopFailureKind): void {
    this.loopFailures.inc({ ...this.labels, kind });
  }

  /** An observer for one request admitted at `admittedAtMs` (epoch ms, see nowMs). */
  request(admittedAtMs: number): RequestObserver {
    let last: number | undefined;
    return {
      started: (promptTokens) => {
        this.promptTokens.inc(this.labels, promptTokens);
        this.promptPerRequest.observe(this.labels, promptTokens);
      },
      token: () => {
        const now = nowMs();
        if (last === undefined) this.ttft.observe(this.labels, (now - admittedAtMs) / 1000);
        else this.itl.observe(this.labels, (now - last) / 1000);
        last = now;
        this.generationTokens.inc(this.labels);
      },
      finished: (completionTokens) => {
        this.generationPerRequest.observe(this.labels, completionTokens);
      },
    };
  }

  snapshot(): Promise<unknown[]> {
    return this.registry.getMetricsAsJSON();
  }
}
