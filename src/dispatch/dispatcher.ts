/**
 * Admission and dispatch over one or more engines. At most `readySequences` (the sum of the engines'
 * ready workers × sequences: 0 for an engine that is down or loading) tasks run at once;
 * beyond that requests wait in one bounded FIFO queue, and past `maxQueue` they are refused at once
 * (429). A task goes to the engine with the most free sequences, so a busy or slow engine gets less
 * and a restarting one none; the shared queue means no request waits behind one engine while another
 * has room. A task's sequence counts as free again when the task settles, not when its last message is read.
 *
 * Each served model has its own dispatcher. An on-demand model's engines come and go (setEngines, only while
 * no task runs); while it has none, its requests wait in the queue for the model to load.
 */
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import { finalOrGrace } from '../engine/final-message.js';
import { QueueFullError, ShuttingDownError, type ApiError } from '../errors.js';
import { nowMs, type CancelReason, type TaskSpec } from '../shared/protocol.js';
import { Job, type JobHandlers, type JobOutcome } from './job.js';

export interface DispatcherOptions {
  maxQueue: number;
  requestTimeoutSeconds: number;
  /** Sequences of every worker of every engine the model runs on when loaded (its configuration, not what is ready). */
  sequences: number;
}

/** What the dispatcher reports for measurement; the metrics implement it. */
export interface DispatchObserver {
  queueFull(): void;
  started(queueSeconds: number): void;
  ended(outcome: JobOutcome): void;
}

export class Dispatcher {
  private readonly queue: Job[] = [];
  private readonly live = new Set<Job>();
  private readonly idleWaiters: (() => void)[] = [];
  private closed = false;
  /** Where the search for the freest engine starts: rotates, so ties are shared in turn. */
  private next = 0;
  /** Requests admitted by reserve() whose prompts are still being prepared (not yet submitted). */
  private reserved = 0;

  private engines: Engine[] = [];
  /** Requests holding a sequence, per engine (their sum is runningCount). */
  private runningOn: number[] = [];

  constructor(
    engines: Engine[],
    private readonly opts: DispatcherOptions,
    private readonly log: Logger,
    private readonly observer: DispatchObserver,
  ) {
    this.setEngines(engines);
  }

  /** The engines tasks run on from now; only while none runs (a model loaded or unloaded). */
  setEngines(engines: Engine[]): void {
    if (this.runningCount > 0) throw new Error('the engines of a dispatcher with running tasks cannot change');
    this.engines = engines;
    this.runningOn = engines.map(() => 0);
    this.next = 0;
    // An engine that became ready (or came back) takes queued requests at once.
    for (const engine of engines) engine.on('change', () => this.pump());
    this.pump();
  }

  /** The most tasks ever admitted at once: every sequence of every worker, and the queue. */
  get maxPlaces(): number {
    return this.opts.sequences + this.opts.maxQueue;
  }

  /** Requests admitted by reserve() and not yet submitted, or queued, or running: the model is in use. */
  get busy(): boolean {
    return this.reserved > 0 || this.live.size > 0;
  }

  /**
   * Fails every queued request with `err` (their model could not be loaded); running ones are not touched.
   */
  failQueued(err: ApiError): void {
    for (const job of this.queue.splice(0)) {
      this.live.delete(job);
      job.settled(err);
    }
    this.checkIdle();
  }

  /** Sequences that may run at once now: the ready sequences of every engine. */
  get readySequences(): number {
    return this.engines.reduce((sum, e) => sum + e.readySequences, 0);
  }

  /**
   * Holds places for a request's tasks (one per choice) while the tokenizer threads prepare it, or refuses
   * it at once (429) when not that many sequences and queue places are free: under overload the excess is
   * refused before any tokenizing, and as fast as before there was any. Call the returned function when
   * the request is submitted (synchronously after it, so no other request can take the places in between)
   * or failed.
   */
  reserve(places = 1): () => void {
    if (this.closed) throw new ShuttingDownError();
    this.checkRoom(places);
    this.reserved += places;
    let held = true;
    return () => {
      if (held) this.reserved -= places;
      held = false;
    };
  }

  /**
   * Admits every task of one request, or none (429 when there is no room for all): choices that ran
   * while a sibling was refused would generate for a client that got an error.
   */
  submitAll(tasks: readonly TaskSpec[], handlers: (i: number) => JobHandlers): Job[] {
    if (this.closed) throw new ShuttingDownError();
    this.checkRoom(tasks.length);
    return tasks.map((task, i) => this.admit(task, handlers(i)));
  }

  /** Throws QueueFullError (and counts it) unless `places` sequences or queue places are free and not held. */
  private checkRoom(places: number): void {
    const free = this.engines.reduce((sum, e, i) => sum + Math.max(0, e.readySequences - this.runningOn[i]!), 0);
    if (free + (this.opts.maxQueue - this.queue.length) - this.reserved >= places) return;
    this.observer.queueFull();
    throw new QueueFullError(this.retryAfterSeconds());
  }

  /** Starts a task on the freest engine, or queues it: checkRoom() has made sure there is room. */
  private admit(task: TaskSpec, handlers: JobHandlers): Job {
    const engine = this.freest();
    const job = new Job(
      { ...task, admittedAtMs: nowMs() },
      handlers,
      this.opts.requestTimeoutSeconds,
      (j) => this.dequeue(j),
      this.observer,
    );
    this.live.add(job);
    if (engine !== undefined) this.start(job, engine);
    else this.queue.push(job);
    return job;
  }

  /** The engine with the most free sequences, if any has one. */
  private freest(): number | undefined {
    let best: number | undefined;
    let bestFree = 0;
    for (let k = 0; k < this.engines.length; k++) {
      const i = (this.next + k) % this.engines.length;
      const free = this.engines[i]!.readySequences - this.runningOn[i]!;
      if (free > bestFree) {
        best = i;
        bestFree = free;
      }
    }
    return best;
  }

  /** A rough hint: one queue's worth of sequences turning over, at least one second. */
  private retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.queue.length / Math.max(1, this.readySequences)));
  }

  private dequeue(job: Job): void {
    const at = this.queue.indexOf(job);
    if (at !== -1) this.queue.splice(at, 1);
    this.live.delete(job);
    // Checked on the next turn: the job reports its end to the client after leaving the queue.
    setImmediate(() => this.checkIdle());
  }

  private start(job: Job, index: number): void {
    this.runningOn[index]!++;
    this.next = (index + 1) % this.engines.length;
    const engine = this.engines[index]!;
    job.engine = { index: engine.index, device: engine.device };
    const channel = engine.run(job.task);
    job.attach(channel);
    channel.settled.then(
      () => this.release(job, index, undefined),
      (err: unknown) => {
        // The cause, under the request's id; the 5xx its client gets is the error line (logged once, by the route).
        this.log.warn({ err, requestId: job.task.requestId, engine: index }, 'model task failed');
        this.release(job, index, err);
      },
    );
  }

  private release(job: Job, index: number, err: unknown): void {
    this.runningOn[index]!--;
    // The worker is done with the task: its sequence is free for the next request now.
    this.pump();
    // Its final message can still be on the way (see final-message.ts); a failed task sends none.
    const concluded = err === undefined ? finalOrGrace(job.ended) : Promise.resolve();
    const conclude = () => {
      job.settled(err);
      this.live.delete(job);
      this.checkIdle();
    };
    // Neither promise rejects (finalOrGrace resolves either way): the job concludes whatever happens.
    concluded.then(conclude, conclude);
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const engine = this.freest();
      if (engine === undefined) return;
      this.start(this.queue.shift()!, engine);
    }
  }

  private checkIdle(): void {
    if (this.live.size === 0) this.idleWaiters.splice(0).forEach((f) => f());
  }

  get runningCount(): number {
    return this.runningOn.reduce((sum, n) => sum + n, 0);
  }

  /** Requests holding a sequence on engine `index`. */
  runningOnEngine(index: number): number {
    return this.runningOn[index] ?? 0;
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
