/**
 * Runs one generation request through the dispatcher and writes the response: one JSON body, or an
 * SSE stream whose headers are sent only once the worker has accepted the prompt (so a prompt that
 * does not fit is still a plain 400). A client that goes away cancels its request.
 */
import type { Response } from 'express';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { JobHandlers } from '../dispatch/job.js';
import type { GenerateTask, TokenLogprob } from '../shared/protocol.js';
import { Answer, type Format } from './openai-format.js';
import { sendError } from './error-handler.js';

export interface RespondOptions {
  task: Omit<GenerateTask, 'port' | 'admittedAtMs'>;
  format: Format;
  stream: boolean;
  includeUsage: boolean;
  /** Called once, when the answer is complete, with the number of tool calls it returned. */
  onToolCalls?: (count: number) => void;
}

export function respond(dispatcher: Dispatcher, res: Response, opts: RespondOptions): void {
  const handlers = opts.stream ? streamHandlers(res, opts) : jsonHandlers(res, opts);
  const job = dispatcher.submit(opts.task, handlers);
  // 'close' fires on the response when the connection ends, also after a normal finish.
  res.on('close', () => {
    if (!res.writableFinished) job.cancel('client');
  });
}

function jsonHandlers(res: Response, { format, onToolCalls }: RespondOptions): JobHandlers {
  const answer = new Answer();
  return {
    onStarted: () => {},
    onText: (t, logprobs) => answer.addText(t, logprobs),
    onToolCall: (delta, logprobs) => answer.addToolCall(delta, logprobs),
    onDone: (reason, usage) => {
      onToolCalls?.(answer.toolCalls.length);
      if (!res.destroyed) res.json(format.full(answer, reason, usage));
    },
    onError: (err) => {
      if (!res.destroyed) sendError(res, err);
    },
  };
}

export function streamHandlers(res: Response, opts: RespondOptions): JobHandlers {
  const { format } = opts;
  const write = (data: object | string) => {
    if (!res.destroyed) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  };
  const end = () => {
    write('[DONE]');
    if (!res.destroyed) res.end();
  };
  // Text that waits for the socket to drain, with the log probabilities of its tokens.
  let toolCalls = 0;
  let held: { text: string; logprobs?: TokenLogprob[] } | undefined;
  const flushHeld = () => {
    if (held === undefined) return;
    const { text, logprobs } = held;
    held = undefined;
    res.off('drain', flushHeld);
    write(format.chunk(text, logprobs));
  };
  return {
    onStarted: () => {
      if (res.destroyed) return;
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
      });
      for (const chunk of format.opening()) write(chunk);
    },
    onText: (t, logprobs) => {
      // A client that reads slower than tokens arrive gets them coalesced: while the socket's buffer
      // is full, text accumulates and goes out as one chunk on 'drain' (fewer, larger writes).
      if (held !== undefined) {
        held.text += t;
        if (logprobs) (held.logprobs ??= []).push(...logprobs);
        return;
      }
      if (!res.writableNeedDrain) {
        write(format.chunk(t, logprobs));
        return;
      }
      held = { text: t, logprobs: logprobs && [...logprobs] };
      res.once('drain', flushHeld);
    },
    onToolCall: (delta, logprobs) => {
      if (delta.name !== undefined) toolCalls++;
      flushHeld();
      write(format.toolCallChunk(delta, logprobs));
    },
    onDone: (reason, usage) => {
      opts.onToolCalls?.(toolCalls);
      flushHeld();
      write(format.closing(reason));
      if (opts.includeUsage) write(format.usageChunk(usage));
      end();
    },
    onError: (err, _usage, started) => {
      flushHeld();
      if (!started) {
        if (!res.destroyed) sendError(res, err);
        return;
      }
      // Headers are gone: the error travels as a data chunk, as OpenAI-compatible servers do.
      write(err.toBody());
      end();
    },
  };
}
