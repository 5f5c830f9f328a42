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
import type { Dispatcher } from '../../dispatch/dispatcher.js';
import type { Job, JobHandlers, Usage } from '../../dispatch/job.js';
import { ShuttingDownError, type ApiError } from '../../errors.js';
import type { EmbedSpec, FinishReason, GenerateSpec, TaskSpec } from '../../shared/protocol.js';
import { logServerFault, sendError } from '../middleware/error-handler.js';
import { requestIdOf } from '../middleware/request-context.js';
import { Answer } from './answer.js';
import type { Renderer } from './renderer.js';
import { StreamOutput } from './stream-output.js';
import { ChoiceSpans, type ExemplarSink } from './trace.js';
import type { RequestTrace } from '../../tracing/tracing.js';

/** What respond() adds to every task of a request: the request's id, and whether it is traced. */
type RequestFields = 'requestId' | 'traced';

export type ChoiceTask = (Omit<GenerateSpec, RequestFields> | Omit<EmbedSpec, RequestFields>) & {
  /** Whether this choice's prompt counts in usage (the first choice of each prompt: n choices share one). */
  countsPrompt: boolean;
};

export type RespondOptions = {
  tasks: ChoiceTask[];
  /** The place the request held in the dispatcher while it was prepared: given back right before submitting. */
  release?: () => void;
  /** Called once, when every choice is complete, with the tool calls they returned. */
  onToolCalls?: (count: number) => void;
  /** The request's trace (tracing on and sampled): a span per choice's queue, prompt and generation. */
  trace?: RequestTrace;
  /** Where the trace's latencies become exemplars, under the model's label. */
  exemplars?: { sink: ExemplarSink; model: string };
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
  const spans = opts.trace && new ChoiceSpans(opts.trace, opts.tasks.length, opts.exemplars);

  const fail = (err: ApiError) => {
    if (failed) return;
    failed = true;
    // Counted as sibling_failed, not as client aborts: the client is still there, waiting for the error. A
    // shutdown ends every choice for the same reason, and is counted so.
    const reason = err instanceof ShuttingDownError ? 'shutdown' : 'sibling_failed';
    for (const job of jobs) job.cancel(reason);
    if (out?.started) {
      logServerFault(res, err);
      out.fail(err);
    } else sendError(res, err);
  };
  const choiceDone = (i: number, reason: FinishReason, usage: Usage, stopSequence?: string) => {
    answers[i]!.finishReason = reason;
    answers[i]!.stopSequence = stopSequence;
    usages[i] = usage;
    spans?.ended(i, jobs[i], {
      finishReason: reason,
      outputTokens: usage.completionTokens,
      cachedTokens: usage.cachedTokens,
      text: answers[i]!.text,
    });
    // A sibling failed: the response is the error, already written or on its way.
    if (failed) return;
    out?.choiceDone(i, reason, answers[i]!);
    if (--pending > 0) return;
    opts.onToolCalls?.(answers.reduce((n, a) => n + a.toolCalls.length, 0));
    const total = totalUsage(opts.tasks, usages);
    opts.trace?.setAttributes({
      'gen_ai.usage.input_tokens': total.promptTokens,
      'gen_ai.usage.output_tokens': total.completionTokens,
      'gen_ai.usage.cache_read.input_tokens': total.cachedTokens,
      'gen_ai.response.finish_reasons': answers.map((a) => a.finishReason ?? 'error'),
    });
    if (out) out.close(total, answers);
    else if (!res.destroyed) res.json(opts.renderer.full(answers, total));
  };

  // Registered before any job exists: a client gone at any point cancels every choice it started.
  res.on('close', () => {
    if (!res.writableFinished) for (const job of jobs) job.cancel('client');
  });
  // Once a choice failed the response is the error: what its siblings still send is dropped.
  const handlers = (i: number): JobHandlers => ({
    onStarted: (promptTokens) => {
      spans?.started(i);
      if (!failed) out?.start(promptTokens);
    },
    onText: (t, logprobs) => {
      if (failed) return;
      answers[i]!.addText(t, logprobs);
      out?.text(i, t, logprobs);
    },
    onToolCall: (delta, logprobs) => {
      if (failed) return;
      answers[i]!.addToolCall(delta, logprobs);
      out?.toolCall(i, delta, logprobs);
    },
    onEmbedding: (vector) => {
      answers[i]!.embedding = vector;
    },
    onDone: (reason, usage, stopSequence) => choiceDone(i, reason, usage, stopSequence),
    onError: (err, usage) => {
      spans?.ended(i, jobs[i], { outputTokens: usage.completionTokens, error: `${err.code}: ${err.message}` });
      fail(err);
    },
  });
  // All choices or none (429): the request's places were held while it was prepared. A traced request's workers
  // measure its times; its id is in the log lines about its tasks.
  const requestId = requestIdOf(res.req);
  const traced = opts.trace !== undefined || undefined;
  jobs.push(
    ...dispatcher.submitAll(
      opts.tasks.map(({ countsPrompt: _, ...task }): TaskSpec => ({ ...task, requestId, traced })),
      handlers,
    ),
  );
}
