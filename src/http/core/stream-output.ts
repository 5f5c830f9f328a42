/**
 * The SSE writer of every streaming API: headers on the first start, events in order, and backpressure.
 */
import type { Response } from 'express';
import type { Usage } from '../../dispatch/job.js';
import type { ApiError } from '../../errors.js';
import type { FinishReason, TokenLogprob, ToolCallDelta } from '../../shared/protocol.js';
import type { Answer } from './answer.js';
import type { Renderer, StreamEvent } from './renderer.js';

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
    // headersSent: an error was answered on this response already (respond.ts drops what follows; this holds too).
    if (this.started || this.res.destroyed || this.res.headersSent) return;
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
    // A response that ended (or never streamed) takes no more writes: writing after end() is an error event.
    if (this.res.destroyed || this.res.writableEnded || !this.started) return;
    for (const e of events) {
      const data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data);
      this.res.write(e.event ? `event: ${e.event}\ndata: ${data}\n\n` : `data: ${data}\n\n`);
    }
  }
}
