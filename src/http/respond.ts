/**
 * Runs one generation request through the dispatcher and writes the response: one JSON body, or an
 * SSE stream whose headers are sent only once the worker has accepted the prompt (so a prompt that
 * does not fit is still a plain 400). A client that goes away cancels its request.
 */
import type { Response } from 'express';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { JobHandlers } from '../dispatch/job.js';
import type { GenerateTask } from '../shared/protocol.js';
import type { Format } from './openai-format.js';
import { sendError } from './error-handler.js';

export interface RespondOptions {
  task: Omit<GenerateTask, 'port' | 'admittedAtMs'>;
  format: Format;
  stream: boolean;
  includeUsage: boolean;
}

export function respond(dispatcher: Dispatcher, res: Response, opts: RespondOptions): void {
  const handlers = opts.stream ? streamHandlers(res, opts) : jsonHandlers(res, opts.format);
  const job = dispatcher.submit(opts.task, handlers);
  // 'close' fires on the response when the connection ends, also after a normal finish.
  res.on('close', () => {
    if (!res.writableFinished) job.cancel('client');
  });
}

function jsonHandlers(res: Response, format: Format): JobHandlers {
  let text = '';
  return {
    onStarted: () => {},
    onText: (t) => {
      text += t;
    },
    onDone: (reason, usage) => {
      if (!res.destroyed) res.json(format.full(text, reason, usage));
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
  let held: string | undefined;
  const flushHeld = () => {
    if (held === undefined) return;
    const text = held;
    held = undefined;
    res.off('drain', flushHeld);
    write(format.chunk(text));
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
    onText: (t) => {
      // A client that reads slower than tokens arrive gets them coalesced: while the socket's buffer
      // is full, text accumulates and goes out as one chunk on 'drain' (fewer, larger writes).
      if (held !== undefined) {
        held += t;
        return;
      }
      if (!res.writableNeedDrain) {
        write(format.chunk(t));
        return;
      }
      held = t;
      res.once('drain', flushHeld);
    },
    onDone: (reason, usage) => {
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
