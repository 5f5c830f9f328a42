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

/**
 * The child spans of a request's choices, from the times their events reach the main thread: `queue` (admitted
 * to started), `prompt` (started to the first token: prompt evaluation), `generate` (first token to the end).
 */
export class ChoiceSpans {
  private readonly startedAt: (number | undefined)[];
  private readonly firstAt: (number | undefined)[];

  constructor(
    private readonly trace: RequestTrace,
    choices: number,
  ) {
    this.startedAt = Array<number | undefined>(choices).fill(undefined);
    this.firstAt = Array<number | undefined>(choices).fill(undefined);
  }

  private attributes(i: number, engine: { index: number; device: string } | undefined) {
    return { 'qwen.choice': i, 'qwen.engine': engine?.index, 'qwen.device': engine?.device };
  }

  started(i: number, admittedAtMs: number, engine: { index: number; device: string } | undefined, promptTokens: number): void {
    const now = nowMs();
    this.startedAt[i] = now;
    this.trace.child('queue', admittedAtMs, now, this.attributes(i, engine));
    this.trace.setAttributes({ 'qwen.engine': engine?.index, 'qwen.device': engine?.device, 'qwen.prompt_tokens': promptTokens });
  }

  /** The first token (or embedding) of choice `i` arrived: the prompt has been evaluated. */
  output(i: number, engine: { index: number; device: string } | undefined): void {
    if (this.firstAt[i] !== undefined) return;
    const now = nowMs();
    this.firstAt[i] = now;
    this.trace.child('prompt', this.startedAt[i] ?? now, now, this.attributes(i, engine));
  }

  ended(
    i: number,
    engine: { index: number; device: string } | undefined,
    outcome: { finishReason?: string; outputTokens: number; cachedTokens?: number; text?: string; error?: string },
  ): void {
    const now = nowMs();
    const from = this.firstAt[i] ?? this.startedAt[i];
    if (from === undefined) return;
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
}
