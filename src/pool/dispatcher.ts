/**
 * Admission and dispatch. At most `capacity` (= workers × sequences) tasks run at once; beyond that
 * requests wait in a bounded FIFO queue, and past `maxQueue` they are refused at once (429). Capacity
 * is released when the worker's task settles, not when its last message is read.
 */
import type { Logger } from 'pino';
import { QueueFullError, ShuttingDownError } from '../errors.js';
import { nowMs, type CancelReason, type GenerateTask } from '../shared/protocol.js';
import { Job, type JobHandlers, type JobOutcome } from './job.js';
import type { ModelPool } from './model-pool.js';

export interface DispatcherOptions {
  maxQueue: number;
  requestTimeoutSeconds: number;
}

/** What the dispatcher reports for measurement; the metrics implement it. */
export interface DispatchObserver {
  queueFull(): void;
  started(queueSeconds: number): void;
  ended(outcome: JobOutcome): void;
}

export class Dispatcher {
  private running = 0;
  private readonly queue: Job[] = [];
  private readonly live = new Set<Job>();
  private readonly idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly pool: ModelPool,
    private readonly opts: DispatcherOptions,
    private readonly log: Logger,
    private readonly observer: DispatchObserver,
  ) {}

  /** Admits a request or throws (QueueFullError, ShuttingDownError) without touching any worker. */
  submit(task: Omit<GenerateTask, 'port' | 'admittedAtMs'>, handlers: JobHandlers): Job {
    if (this.closed) throw new ShuttingDownError();
    if (this.running >= this.pool.capacity && this.queue.length >= this.opts.maxQueue) {
      this.observer.queueFull();
      throw new QueueFullError(this.retryAfterSeconds());
    }
    const job = new Job(
      { ...task, admittedAtMs: nowMs() },
      handlers,
      this.opts.requestTimeoutSeconds,
      (j) => this.dequeue(j),
      this.observer,
    );
    this.live.add(job);
    if (this.running < this.pool.capacity) this.start(job);
    else this.queue.push(job);
    return job;
  }

  /** A rough hint: one queue's worth of sequences turning over, at least one second. */
  private retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.queue.length / Math.max(1, this.pool.capacity)));
  }

  private dequeue(job: Job): void {
    const at = this.queue.indexOf(job);
    if (at !== -1) this.queue.splice(at, 1);
    this.live.delete(job);
    // Checked on the next turn: the job reports its end to the client after leaving the queue.
    setImmediate(() => this.checkIdle());
  }

  private start(job: Job): void {
    this.running++;
    const { port, settled } = this.pool.run(job.task);
    job.attach(port);
    settled.then(
      () => this.release(job, undefined),
      (err: unknown) => {
        this.log.error({ err, requestId: job.task.requestId }, 'model task failed');
        this.release(job, err);
      },
    );
  }

  private release(job: Job, err: unknown): void {
    this.running--;
    // The port's last messages can arrive after the task promise: give them one turn of the loop.
    setImmediate(() => {
      job.settled(err);
      this.live.delete(job);
      this.pump();
      this.checkIdle();
    });
  }

  private pump(): void {
    while (this.running < this.pool.capacity && this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.start(next);
    }
  }

  private checkIdle(): void {
    if (this.live.size === 0) this.idleWaiters.splice(0).forEach((f) => f());
  }

  get runningCount(): number {
    return this.running;
  }

  get waitingCount(): number {
    return this.queue.length;
  }

  /** Requests admitted and not yet finished (queued or running). */
  get activeCount(): number {
    return this.live.size;
  }

  /** Stops admitting; already admitted requests continue. */
  close(): void {
    this.closed = true;
  }

  cancelAll(reason: CancelReason): void {
    for (const job of [...this.live]) job.cancel(reason);
  }

  /** Resolves when no request is queued or running (every worker task has settled). */
  idle(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
