/**
 * Runs one API request through the dispatcher and writes the response: one JSON body, or an SSE stream
 * whose headers are sent only once a worker has accepted a prompt (so a prompt that does not fit is still
 * a plain 400). A request may have several choices (n > 1, several prompts): each is its own job, and the
 * response ends when all have. A client that goes away cancels them all.
 *
 * What the events look like is the Renderer's business (OpenAI chat / completions, Responses, Anthropic
 * Messages); this file owns the job bookkeeping, backpressure and error handling they share.
 */
import type { Response } from 'express';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { Job, JobHandlers, Usage } from '../dispatch/job.js';
import type { ApiError } from '../errors.js';
import type { FinishReason, TaskSpec, TokenLogprob, ToolCallDelta } from '../shared/protocol.js';
import { logServerFault, sendError } from './error-handler.js';
import { Answer } from './answer.js';

/** One server-sent event: `event:` (omitted for OpenAI's data-only streams) and its data. */
export interface StreamEvent {
  event?: string;
  data: object | string;
}

/** Turns the answers of a request into one API's wire format. */
export interface Renderer {
  /** Events sent with the headers, before any text (`promptTokens`: of the first choice that started). */
  opening(promptTokens: number): StreamEvent[];
  text(choice: number, text: string, logprobs?: TokenLogprob[]): StreamEvent[];
  toolCall(choice: number, delta: ToolCallDelta, logprobs?: TokenLogprob[]): StreamEvent[];
  /** One choice ended. */
  choiceDone(choice: number, reason: FinishReason, answer: Answer): StreamEvent[];
  /** Every choice ended: usage, terminator. */
  closing(usage: Usage, answers: readonly Answer[]): StreamEvent[];
  /** A failure after the headers went out; the stream ends after these events. */
  streamError(err: ApiError): StreamEvent[];
  /** The non-streamed body. */
  full(answers: readonly Answer[], usage: Usage): object;
}

export type ChoiceTask = TaskSpec & {
  /** Whether this choice's prompt counts in usage (the first choice of each prompt: n choices share one). */
  countsPrompt: boolean;
};

export type RespondOptions = {
  tasks: ChoiceTask[];
  /** The place the request held in the dispatcher while it was prepared: given back right before submitting. */
  release?: () => void;
  /** Called once, when every choice is complete, with the tool calls they returned. */
  onToolCalls?: (count: number) => void;
  // A request that never streams (embeddings) needs only the body.
} & ({ stream: boolean; renderer: Renderer } | { stream: false; renderer: Pick<Renderer, 'full'> });

/** Sums the choices' usage: prompts once each, every choice's completion. */
function totalUsage(tasks: readonly ChoiceTask[], usages: readonly (Usage | undefined)[]): Usage {
  const total: Usage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  usages.forEach((u, i) => {
    if (!u) return;
    total.completionTokens += u.completionTokens;
    if (tasks[i]!.countsPrompt) {
      total.promptTokens += u.promptTokens;
      total.cachedTokens! += u.cachedTokens ?? 0;
    }
  });
  return total;
}

export function respond(dispatcher: Dispatcher, res: Response, opts: RespondOptions): void {
  opts.release?.();
  // The client left while the request was being prepared: nothing to generate for.
  if (res.destroyed) return;
  const out = opts.stream ? new StreamOutput(res, opts.renderer) : undefined;
  const answers = opts.tasks.map(() => new Answer());
  const usages: (Usage | undefined)[] = opts.tasks.map(() => undefined);
  const jobs: Job[] = [];
  let pending = opts.tasks.length;
  let failed = false;

  const fail = (err: ApiError) => {
    if (failed) return;
    failed = true;
    for (const job of jobs) job.cancel('client');
    if (out?.started) {
      logServerFault(res, err);
      out.fail(err);
    } else sendError(res, err);
  };
  const choiceDone = (i: number, reason: FinishReason, usage: Usage, stopSequence?: string) => {
    answers[i]!.finishReason = reason;
    answers[i]!.stopSequence = stopSequence;
    usages[i] = usage;
    out?.choiceDone(i, reason, answers[i]!);
    if (--pending > 0 || failed) return;
    opts.onToolCalls?.(answers.reduce((n, a) => n + a.toolCalls.length, 0));
    const total = totalUsage(opts.tasks, usages);
    if (out) out.close(total, answers);
    else if (!res.destroyed) res.json(opts.renderer.full(answers, total));
  };

  opts.tasks.forEach(({ countsPrompt: _, ...task }, i) => {
    const handlers: JobHandlers = {
      onStarted: (promptTokens) => out?.start(promptTokens),
      onText: (t, logprobs) => {
        answers[i]!.addText(t, logprobs);
        out?.text(i, t, logprobs);
      },
      onToolCall: (delta, logprobs) => {
        answers[i]!.addToolCall(delta, logprobs);
        out?.toolCall(i, delta, logprobs);
      },
      onEmbedding: (vector) => (answers[i]!.embedding = vector),
      onDone: (reason, usage, stopSequence) => choiceDone(i, reason, usage, stopSequence),
      onError: (err) => fail(err),
    };
    jobs.push(dispatcher.submit(task, handlers));
  });
  // 'close' fires on the response when the connection ends, also after a normal finish.
  res.on('close', () => {
    if (!res.writableFinished) for (const job of jobs) job.cancel('client');
  });
}

/**
 * The SSE side: headers on the first start, events in order, and backpressure: a client that reads slower
 * than tokens arrive gets each choice's text coalesced while the socket's buffer is full, sent as one event
 * on 'drain' (fewer, larger writes).
 */
export class StreamOutput {
  started = false;
  private readonly held = new Map<number, { text: string; logprobs?: TokenLogprob[] }>();

  constructor(
    private readonly res: Response,
    private readonly renderer: Renderer,
  ) {}

  start(promptTokens: number): void {
    if (this.started || this.res.destroyed) return;
    this.started = true;
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    this.write(this.renderer.opening(promptTokens));
  }

  text(choice: number, text: string, logprobs?: TokenLogprob[]): void {
    const held = this.held.get(choice);
    if (held) {
      held.text += text;
      if (logprobs) (held.logprobs ??= []).push(...logprobs);
      return;
    }
    if (!this.res.writableNeedDrain) {
      this.write(this.renderer.text(choice, text, logprobs));
      return;
    }
    if (this.held.size === 0) this.res.once('drain', this.flush);
    this.held.set(choice, { text, logprobs: logprobs && [...logprobs] });
  }

  toolCall(choice: number, delta: ToolCallDelta, logprobs?: TokenLogprob[]): void {
    this.flush();
    this.write(this.renderer.toolCall(choice, delta, logprobs));
  }

  choiceDone(choice: number, reason: FinishReason, answer: Answer): void {
    this.flush();
    this.write(this.renderer.choiceDone(choice, reason, answer));
  }

  close(usage: Usage, answers: readonly Answer[]): void {
    this.flush();
    this.write(this.renderer.closing(usage, answers));
    if (!this.res.destroyed) this.res.end();
  }

  /** Headers are gone: the error travels as events, as OpenAI-compatible servers do. */
  fail(err: ApiError): void {
    this.flush();
    this.write(this.renderer.streamError(err));
    if (!this.res.destroyed) this.res.end();
  }

  private readonly flush = (): void => {
    if (this.held.size === 0) return;
    this.res.off('drain', this.flush);
    const held = [...this.held];
    this.held.clear();
    for (const [choice, { text, logprobs }] of held) this.write(this.renderer.text(choice, text, logprobs));
  };

  private write(events: StreamEvent[]): void {
    if (this.res.destroyed) return;
    for (const e of events) {
      const data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data);
      this.res.write(e.event ? `event: ${e.event}\ndata: ${data}\n\n` : `data: ${data}\n\n`);
    }
  }
}
