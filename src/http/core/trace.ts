/**
 * A request's trace (tracing on) as the routes reach it: set by the app when the request starts, read where the
 * request's work happens. Absent when tracing is off or the sampler dropped nothing yet to record.
 */
import type { Response } from 'express';
import { nowMs } from '../../shared/protocol.js';
import type { RequestTrace } from '../../tracing/tracing.js';

const traces = new WeakMap<Response, RequestTrace>();

export function setTrace(res: Response, trace: RequestTrace): void {
  traces.set(res, trace);
}

/** The request's trace, if it is traced and sampled (an unsampled one records nothing, so it is not handed out). */
export function traceOf(res: Response): RequestTrace | undefined {
  const trace = traces.get(res);
  return trace?.sampled ? trace : undefined;
}

/** Where a sampled request's latencies go as exemplars (the metrics' exemplar store). */
export interface ExemplarSink {
  record(metric: string, labels: Record<string, string>, value: number, traceId: string): void;
}

/** The histograms whose exemplars come from a request's choices, all labelled by model. */
const QUEUE = 'qwen_request_queue_seconds';
const TTFT = 'qwen_time_to_first_token_seconds';
const ITL = 'qwen_inter_token_latency_seconds';

/**
 * The child spans of a request's choices, from the times their events reach the main thread: `queue` (admitted
 * to started), `prompt` (started to the first token: prompt evaluation), `generate` (first token to the end).
 */
export class ChoiceSpans {
  private readonly startedAt: (number | undefined)[];
  private readonly firstAt: (number | undefined)[];

  private readonly admittedAt: (number | undefined)[];

  /** @param exemplars with the model's label: the choice's queue time, first-token time and mean inter-token time */
  constructor(
    private readonly trace: RequestTrace,
    choices: number,
    private readonly exemplars?: { sink: ExemplarSink; model: string },
  ) {
    this.admittedAt = Array<number | undefined>(choices).fill(undefined);
    this.startedAt = Array<number | undefined>(choices).fill(undefined);
    this.firstAt = Array<number | undefined>(choices).fill(undefined);
  }

  private attributes(i: number, engine: { index: number; device: string } | undefined) {
    return { 'qwen.choice': i, 'qwen.engine': engine?.index, 'qwen.device': engine?.device };
  }

  started(i: number, admittedAtMs: number, engine: { index: number; device: string } | undefined, promptTokens: number): void {
    const now = nowMs();
    this.startedAt[i] = now;
    this.admittedAt[i] = admittedAtMs;
    this.trace.child('queue', admittedAtMs, now, this.attributes(i, engine));
    this.exemplar(QUEUE, (now - admittedAtMs) / 1000);
    this.trace.setAttributes({ 'qwen.engine': engine?.index, 'qwen.device': engine?.device, 'qwen.prompt_tokens': promptTokens });
  }

  /** The first token (or embedding) of choice `i` arrived: the prompt has been evaluated. */
  output(i: number, engine: { index: number; device: string } | undefined): void {
    if (this.firstAt[i] !== undefined) return;
    const now = nowMs();
    this.firstAt[i] = now;
    this.trace.child('prompt', this.startedAt[i] ?? now, now, this.attributes(i, engine));
    const admitted = this.admittedAt[i];
    if (admitted !== undefined) this.exemplar(TTFT, (now - admitted) / 1000);
  }

  ended(
    i: number,
    engine: { index: number; device: string } | undefined,
    outcome: { finishReason?: string; outputTokens: number; cachedTokens?: number; text?: string; error?: string },
  ): void {
    const now = nowMs();
    const from = this.firstAt[i] ?? this.startedAt[i];
    if (from === undefined) return;
    if (this.firstAt[i] !== undefined && outcome.outputTokens > 1) this.exemplar(ITL, (now - from) / 1000 / (outcome.outputTokens - 1));
    this.trace.child(
      'generate',
      from,
      now,
      {
        ...this.attributes(i, engine),
        'gen_ai.response.finish_reasons': outcome.finishReason === undefined ? undefined : [outcome.finishReason],
        'gen_ai.usage.output_tokens': outcome.outputTokens,
        'gen_ai.usage.cache_read.input_tokens': outcome.cachedTokens,
        'gen_ai.completion': this.trace.recordContent ? outcome.text : undefined,
      },
      outcome.error,
    );
  }

  private exemplar(metric: string, seconds: number): void {
    this.exemplars?.sink.record(metric, { model: this.exemplars.model }, seconds, this.trace.traceId);
  }
}
