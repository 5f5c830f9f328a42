/**
 * The Piscina pool of model workers and their readiness. Settings the design depends on:
 * minThreads === maxThreads (a respawn reloads the model), no idle timeout, one task per sequence,
 * atomics disabled (otherwise idle workers sit in Atomics.wait and never answer control messages).
 */
import { BroadcastChannel, MessageChannel, type MessagePort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { CONTROL_CHANNEL, type ControlMessage, type GenerateTask, type WorkerInit } from '../shared/protocol.js';

const WORKER_FILE = fileURLToPath(new URL('../../workers/model-worker.js', import.meta.url));

export interface PoolOptions extends WorkerInit {
  workers: number;
}

export type WorkerState = 'loading' | 'ready' | 'failed';

export class ModelPool {
  private readonly piscina: Piscina;
  private readonly control: BroadcastChannel;
  private readonly states = new Map<number, WorkerState>();
  private readonly readyWaiters: (() => void)[] = [];
  private failure: string | undefined;
  private failureListeners: ((message: string) => void)[] = [];
  readonly capacity: number;

  constructor(
    private readonly opts: PoolOptions,
    private readonly log: Logger,
  ) {
    this.capacity = opts.workers * opts.sequences;
    this.control = new BroadcastChannel(CONTROL_CHANNEL);
    this.control.unref();
    this.control.onmessage = (event) => this.onControl((event as { data: ControlMessage }).data);
    const { workers, ...init } = opts;
    this.piscina = new Piscina({
      filename: WORKER_FILE,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: opts.sequences,
      atomics: 'disabled',
      workerData: init satisfies WorkerInit,
    });
    // Without a listener an 'error' event (a worker that died) would throw in the main thread.
    this.piscina.on('error', (err: unknown) => this.log.error({ err }, 'model worker died'));
  }

  private onControl(msg: ControlMessage): void {
    if (msg.type === 'ready') {
      this.states.set(msg.workerId, 'ready');
      this.log.info({ worker: msg.workerId, loadSeconds: Number(msg.loadSeconds.toFixed(3)) }, 'model worker ready');
      if (this.readyWorkers >= this.opts.workers) this.readyWaiters.splice(0).forEach((f) => f());
    } else {
      this.states.set(msg.workerId, 'failed');
      this.failure = msg.message;
      this.failureListeners.forEach((f) => f(msg.message));
    }
  }

  get readyWorkers(): number {
    let n = 0;
    for (const s of this.states.values()) if (s === 'ready') n++;
    return n;
  }

  get workers(): number {
    return this.opts.workers;
  }

  /** Resolves when every worker has loaded the model. */
  whenReady(): Promise<void> {
    if (this.readyWorkers >= this.opts.workers) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Called once if any worker fails to load the model (a bad file, out of memory). */
  onLoadFailure(listener: (message: string) => void): void {
    if (this.failure !== undefined) listener(this.failure);
    else this.failureListeners.push(listener);
  }

  /**
   * Starts a task and returns the main side of its port. The task promise is returned separately:
   * it may settle before the last port message arrives, so streams end on the port's done/error.
   */
  run(task: Omit<GenerateTask, 'port'>): { port: MessagePort; settled: Promise<unknown> } {
    const { port1, port2 } = new MessageChannel();
    const settled = this.piscina.run({ ...task, port: port2 } satisfies GenerateTask, { transferList: [port2] });
    return { port: port1, settled };
  }

  /** Closes the pool; only call it when no task is running (closing a busy worker aborts the process). */
  async close(): Promise<void> {
    this.control.close();
    await this.piscina.close();
  }
}
