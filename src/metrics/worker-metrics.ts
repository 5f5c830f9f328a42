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

/** What one decode step of the batch loop did (workers/batch-loop.ts reports it). */
export interface DecodeStepStats {
  /** Tokens decoded: sampled tokens fed back, draft tokens and prompt tokens. */
  tokens: number;
  /** Sequences in the step. */
  sequences: number;
  /** Wall time of the step: batch assembly, llama_decode and sampling. */
  seconds: number;
  /** Sequences in the step that verified a draft (absent: speculative decoding is off). */
  drafts?: number;
  /** Draft tokens verified (decoded) in the step; part of `tokens`. */
  drafted?: number;
  /** Draft tokens the model's own samples confirmed (at most `drafted`). */
  accepted?: number;
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
  private readonly specDrafts;
  private readonly specDraftTokens;
  private readonly specAcceptedTokens;

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
    this.specDrafts = counter(WORKER.specDrafts, r);
    this.specDraftTokens = counter(WORKER.specDraftTokens, r);
    this.specAcceptedTokens = counter(WORKER.specAcceptedTokens, r);
    const labels = this.labels;
    gauge(WORKER.kvUsage, r, function () {
      this.set(labels, opts.kvUsage());
    });
    // Series exist from the start, so rate() and histogram_quantile() see the first requests.
    this.promptTokens.inc(labels, 0);
    this.generationTokens.inc(labels, 0);
    // Also while speculative decoding is off: draft rates then read 0 tokens/s rather than no data.
    for (const c of [this.specDrafts, this.specDraftTokens, this.specAcceptedTokens]) c.inc(labels, 0);
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
  step(stats: DecodeStepStats): void {
    this.stepTokens.observe(this.labels, stats.tokens);
    this.stepSequences.observe(this.labels, stats.sequences);
    this.stepTime.observe(this.labels, stats.seconds);
    // Only positive counts: prom-client's inc() counts an absent amount as 1 and throws on a negative one,
    // which would fail the step that reported it.
    const add = (c: typeof this.specDrafts, n: number | undefined) => {
      if (n !== undefined && n > 0) c.inc(this.labels, n);
    };
    add(this.specDrafts, stats.drafts);
    add(this.specDraftTokens, stats.drafted);
    add(this.specAcceptedTokens, stats.accepted);
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
