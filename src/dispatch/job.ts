/**
 * One admitted request on its way through the queue and a worker. Owns the task's channel:
 * turns worker messages into handler calls, sends `cancel`, and guarantees exactly one final call
 * (onDone or onError) whatever happens (timeout, client gone, worker death, shutdown).
 */
import { ApiError, RequestTimeoutError, ShuttingDownError, WorkerFailedError } from '../errors.js';
import type { EngineTask, TaskChannel } from '../engine/engine.js';
import type {
  CancelReason,
  FinishReason,
  MainMessage,
  TaskTimings,
  TokenLogprob,
  ToolCallDelta,
  WorkerMessage,
} from '../shared/protocol.js';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens reused from the KV cache (known once the request is done). */
  cachedTokens?: number;
}

export interface JobHandlers {
  /** The prompt fit and generation began (a stream may now send headers). */
  onStarted(promptTokens: number): void;
  /** Answer text (possibly empty when it only carries the log probabilities of held tokens). */
  onText(text: string, logprobs?: TokenLogprob[]): void;
  onToolCall(delta: ToolCallDelta, logprobs?: TokenLogprob[]): void;
  /** The input's embedding (embedding tasks only). */
  onEmbedding?(vector: number[]): void;
  /** `stopSequence`: the stop string that ended the answer, if one did. */
  onDone(finishReason: FinishReason, usage: Usage, stopSequence?: string): void;
  /** `started` tells whether onStarted was called before the failure. */
  onError(err: ApiError, usage: Usage, started: boolean): void;
}

export type JobState = 'queued' | 'running' | 'finished';

/**
 * How a request ended, as the metrics count it. `sibling_failed`: cancelled because another choice of the
 * same request failed (not a client abort, and not an error of its own).
 */
export type JobOutcome =
  | { kind: 'finished'; reason: FinishReason | 'error' | 'sibling_failed' }
  | { kind: 'rejected'; reason: 'timeout' | 'invalid' };

/** Plain lifecycle events for whoever measures (the dispatcher passes them to the metrics). */
export interface JobReporter {
  started(queueSeconds: number): void;
  ended(outcome: JobOutcome): void;
}

export class Job {
  state: JobState = 'queued';
  /** The engine the job runs on, once it left the queue (its trace's `qwen.engine`). */
  engine: { index: number; device: string } | undefined;
  /** What the worker measured of a traced task, from its final message (before the final handler call). */
  timings: TaskTimings | undefined;
  readonly admittedAt = performance.now();
  private channel: TaskChannel | undefined;
  private cancelReason: CancelReason | undefined;
  private started = false;
  private usage: Usage = { promptTokens: 0, completionTokens: 0 };
  private readonly timer: NodeJS.Timeout;
  private resolveEnded!: () => void;
  /** Resolves once the job has made its one final call (onDone or onError). */
  readonly ended = new Promise<void>((resolve) => (this.resolveEnded = resolve));

  /**
   * @param leaveQueue called when a queued job is cancelled, so the dispatcher drops it from the queue
   */
  constructor(
    readonly task: EngineTask,
    private readonly handlers: JobHandlers,
    private readonly timeoutSeconds: number,
    private readonly leaveQueue: (job: Job) => void,
    private readonly reporter: JobReporter,
  ) {
    this.timer = setTimeout(() => this.cancel('timeout'), timeoutSeconds * 1000);
    this.timer.unref();
  }

  /** Attaches the task's channel once the job leaves the queue. */
  attach(channel: TaskChannel): void {
    this.state = 'running';
    this.channel = channel;
    channel.onMessage((msg) => this.onMessage(msg));
    // A cancel that arrived while queued-to-running must still reach the worker.
    if (this.cancelReason) this.send({ type: 'cancel', reason: this.cancelReason });
  }

  private onMessage(msg: WorkerMessage): void {
    if (this.state === 'finished') return;
    switch (msg.type) {
      case 'started':
        this.started = true;
        this.usage.promptTokens = msg.promptTokens;
        this.reporter.started((performance.now() - this.admittedAt) / 1000);
        this.handlers.onStarted(msg.promptTokens);
        break;
      case 'text':
        this.usage.completionTokens += msg.tokens;
        if (msg.text || msg.logprobs?.length) this.handlers.onText(msg.text, msg.logprobs);
        break;
      case 'embedding':
        this.handlers.onEmbedding?.(msg.vector);
        break;
      case 'tool_call':
        this.usage.completionTokens += msg.tokens;
        this.handlers.onToolCall(msg.delta, msg.logprobs);
        break;
      case 'done': {
        this.timings = msg.timings;
        this.usage = { promptTokens: msg.promptTokens, completionTokens: msg.completionTokens, cachedTokens: msg.cachedTokens };
        if (msg.finishReason === 'abort') this.endCancelled();
        else
          this.finish({ kind: 'finished', reason: msg.finishReason }, () =>
            this.handlers.onDone(msg.finishReason, this.usage, msg.stopSequence),
          );
        break;
      }
      case 'error':
        this.timings = msg.timings;
        this.usage = { promptTokens: msg.promptTokens, completionTokens: msg.completionTokens };
        this.fail(ApiError.fromPayload(msg.error));
        break;
    }
  }

  /**
   * The final call of a cancelled request (queued, or stopped by its worker): a timeout or a shutdown is an
   * error for the client; a client that left gets a plain `abort` finish, counted as one; a choice stopped
   * because a sibling failed gets the same `abort` finish (its request reports the sibling's error) but is
   * counted as `sibling_failed`, not as a client abort.
   */
  private endCancelled(): void {
    const reason = this.cancelReason;
    if (reason === 'timeout') return this.fail(new RequestTimeoutError(this.timeoutSeconds));
    if (reason === 'shutdown') return this.fail(new ShuttingDownError());
    const counted = reason === 'sibling_failed' ? 'sibling_failed' : 'abort';
    this.finish({ kind: 'finished', reason: counted }, () => this.handlers.onDone('abort', this.usage));
  }

  /**
   * Asks the worker to stop (it does within one decode step); a queued job ends at once. Only the first
   * cancel counts. `sibling_failed`: call it on the other choices of a request when one of them failed.
   */
  cancel(reason: CancelReason): void {
    if (this.state === 'finished' || this.cancelReason) return;
    this.cancelReason = reason;
    if (this.state === 'queued') {
      this.leaveQueue(this);
      this.endCancelled();
      return;
    }
    this.send({ type: 'cancel', reason });
  }

  /** The worker task settled; if no final message came (worker or engine died), the request fails. */
  settled(error: unknown): void {
    if (this.state === 'finished') return;
    if (error instanceof ApiError) return this.fail(error);
    const why = error instanceof Error ? error.message : 'the task ended without a result';
    this.fail(new WorkerFailedError(`The model worker serving this request failed (${why}); please retry.`));
  }

  private send(msg: MainMessage): void {
    this.channel?.send(msg);
  }

  private fail(err: ApiError): void {
    this.finish(this.classify(err), () => this.handlers.onError(err, this.usage, this.started));
  }

  /** A timeout before generation is a rejection; after it, the request was cut short (abort). */
  private classify(err: ApiError): JobOutcome {
    if (err instanceof RequestTimeoutError)
      return this.started ? { kind: 'finished', reason: 'abort' } : { kind: 'rejected', reason: 'timeout' };
    if (err instanceof ShuttingDownError) return { kind: 'finished', reason: 'abort' };
    if (err.status >= 400 && err.status < 500) return { kind: 'rejected', reason: 'invalid' };
    return { kind: 'finished', reason: 'error' };
  }

  private finish(outcome: JobOutcome, respond: () => void): void {
    if (this.state === 'finished') return;
    this.state = 'finished';
    clearTimeout(this.timer);
    this.channel?.close();
    this.reporter.ended(outcome);
    respond();
    this.resolveEnded();
  }
}
