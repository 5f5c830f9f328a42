/**
 * A request's trace (tracing on) as the routes reach it: set by the app when the request starts, read where the
 * request's work happens. Absent when tracing is off or the sampler dropped nothing yet to record.
 */
import type { Response } from 'express';
import type { Job } from '../../dispatch/job.js';
import { traceContent } from '../../shared/prepare-protocol.js';
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

/** What a choice's spans are built from: its job (admission, engine, the worker's timings). */
type ChoiceJob = Pick<Job, 'task' | 'engine' | 'timings'>;

/** How a choice ended, for its spans. */
export interface ChoiceOutcome {
  finishReason?: string;
  outputTokens: number;
  cachedTokens?: number;
  text?: string;
  error?: string;
}

/**
 * The child spans of a request's choices, built when each ends from the times its worker measured (TaskTimings):
 * `queue` (admitted to the worker taking it), `grammar` (compiling its grammars), `prompt` (to the first token:
 * prompt evaluation), `generate` (first token to the end, with a `decode` event per reported step) and
 * `tool_call` (the model's first call to its last token). A choice whose worker reported nothing (it never left
 * the queue, or its worker died) gets its spans from the times its events reached the main thread.
 */
export class ChoiceSpans {
  private readonly startedAt: (number | undefined)[];

  /** @param exemplars with the model's label: the choice's queue time, first-token time and mean inter-token time */
  constructor(
    private readonly trace: RequestTrace,
    choices: number,
    private readonly exemplars?: { sink: ExemplarSink; model: string },
  ) {
    this.startedAt = Array<number | undefined>(choices).fill(undefined);
  }

  /** The worker's `started` reached the main thread (only used when the worker reports no timings). */
  started(i: number): void {
    this.startedAt[i] ??= nowMs();
  }

  ended(i: number, job: ChoiceJob | undefined, outcome: ChoiceOutcome): void {
    if (!job) return;
    const admitted = job.task.admittedAtMs;
    const t = job.timings;
    const attributes = { 'qwen.choice': i, 'qwen.engine': job.engine?.index, 'qwen.device': job.engine?.device, 'qwen.worker': t?.worker };
    this.trace.setAttributes({ 'qwen.engine': job.engine?.index, 'qwen.device': job.engine?.device, 'qwen.worker': t?.worker });
    const generated = {
      ...attributes,
      'gen_ai.response.finish_reasons': outcome.finishReason === undefined ? undefined : [outcome.finishReason],
      'gen_ai.usage.output_tokens': outcome.outputTokens,
      'gen_ai.usage.cache_read.input_tokens': outcome.cachedTokens,
      'gen_ai.completion': this.trace.recordContent && outcome.text !== undefined ? traceContent(outcome.text) : undefined,
    };
    const { error } = outcome;
    if (!t) {
      const started = this.startedAt[i];
      const now = nowMs();
      this.trace.child({
        name: 'queue',
        startMs: admitted,
        endMs: started ?? now,
        attributes,
        error: started === undefined ? error : undefined,
      });
      if (started !== undefined) this.trace.child({ name: 'generate', startMs: started, endMs: now, attributes: generated, error });
      return;
    }
    this.trace.child({ name: 'queue', startMs: admitted, endMs: t.startedMs, attributes });
    this.exemplar(QUEUE, t.startedMs - admitted);
    if (t.grammar) this.trace.child({ name: 'grammar', startMs: t.grammar[0], endMs: t.grammar[1], attributes });
    const promptFrom = t.grammar?.[1] ?? t.startedMs;
    if (t.firstMs === undefined) {
      // Failed or cancelled before its first token: the prompt's evaluation is where it ended.
      this.trace.child({ name: 'prompt', startMs: promptFrom, endMs: t.endMs, attributes, error });
      return;
    }
    this.trace.child({ name: 'prompt', startMs: promptFrom, endMs: t.firstMs, attributes });
    this.exemplar(TTFT, t.firstMs - admitted);
    if (job.task.kind !== 'generate') return;
    const last = t.lastMs ?? t.firstMs;
    if (outcome.outputTokens > 1) this.exemplar(ITL, (last - t.firstMs) / (outcome.outputTokens - 1));
    const events = t.steps.map((timeMs, j) => ({ name: 'decode', timeMs, attributes: { 'qwen.tokens': 1 + (j + 1) * t.stepStride } }));
    this.trace.child({ name: 'generate', startMs: t.firstMs, endMs: t.endMs, attributes: generated, error, events });
    if (t.toolCallMs !== undefined) this.trace.child({ name: 'tool_call', startMs: t.toolCallMs, endMs: last, attributes });
  }

  private exemplar(metric: string, ms: number): void {
    this.exemplars?.sink.record(metric, { model: this.exemplars.model }, ms / 1000, this.trace.traceId);
  }
}
