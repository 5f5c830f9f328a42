/**
 * The Piscina pool of model workers, their readiness and their replacement. Settings the design
 * depends on: minThreads === maxThreads (a respawn reloads the model), no idle timeout, one task per
 * sequence, atomics disabled (otherwise idle workers sit in Atomics.wait and never answer messages).
 *
 * Workers talk back on their parentPort (re-emitted by Piscina as 'message'); the main thread reaches
 * all workers through a BroadcastChannel.
 */
import { EventEmitter } from 'node:events';
import { BroadcastChannel, MessageChannel, type MessagePort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { logLlama } from '../../log.js';
import { type ControlMessage, type ModelTask, type WorkerInit, type WorkerRequest } from '../../shared/protocol.js';
import type { EngineTask } from '../engine.js';

const WORKER_FILE = fileURLToPath(new URL('../../../workers/model-worker.js', import.meta.url));

export interface PoolOptions extends WorkerInit {
  workers: number;
}

export interface ReadyWorker {
  workerId: number;
  /** Stable position 0..workers-1; a replacement takes the slot of the worker it replaces. */
  slot: number;
}

export interface PoolEvents {
  ready: [ReadyWorker & { loadSeconds: number; llamaCpp: string }];
  /** A worker that had loaded the model is gone (it died); Piscina starts a replacement. */
  retired: [ReadyWorker];
  metrics: [{ workerId: number; id: number; metrics: unknown[] }];
  loadFailed: [string];
}

export class ModelPool extends EventEmitter<PoolEvents> {
  private readonly piscina: Piscina;
  private readonly channel: BroadcastChannel;
  private readonly live = new Map<number, ReadyWorker>();
  private readonly readyWaiters: (() => void)[] = [];
  private closing = false;

  constructor(
    private readonly opts: PoolOptions,
    private readonly log: Logger,
  ) {
    super();
    this.channel = new BroadcastChannel(opts.channel);
    this.channel.unref();
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
    this.piscina.on('message', (msg: ControlMessage) => this.onMessage(msg));
    // The destroyed worker's threadId already reads -1 here, so find which live worker is gone.
    this.piscina.on('workerDestroy', () => this.onDestroyed());
    // Without a listener an 'error' event (a worker that died while idle) would throw in the main thread.
    this.piscina.on('error', (err: unknown) => this.log.error({ err }, 'model worker error'));
  }

  private onMessage(msg: ControlMessage): void {
    switch (msg.type) {
      case 'ready': {
        const used = new Set([...this.live.values()].map((w) => w.slot));
        let slot = 0;
        while (used.has(slot)) slot++;
        const worker = { workerId: msg.workerId, slot };
        this.live.set(msg.workerId, worker);
        // topLogprobs: whether node-llama-cpp's addon was patched at install (scripts/addon-patch); the stock one
        // halves the decode speed of a batch that holds a top_logprobs request.
        this.log.info(
          { worker: msg.workerId, slot, loadSeconds: Number(msg.loadSeconds.toFixed(3)), topLogprobs: msg.topLogprobs },
          'model worker ready',
        );
        this.emit('ready', { ...worker, loadSeconds: msg.loadSeconds, llamaCpp: msg.llamaCpp });
        if (this.readyWorkers >= this.opts.workers) this.readyWaiters.splice(0).forEach((f) => f());
        break;
      }
      case 'load_failed':
        this.emit('loadFailed', msg.message);
        break;
      case 'metrics':
        this.emit('metrics', msg);
        break;
      case 'llama_log':
        logLlama(this.log, msg, 'model');
        break;
    }
  }

  private onDestroyed(): void {
    const running = new Set(this.piscina.threads.map((t) => t.threadId));
    for (const [workerId, worker] of this.live) {
      if (running.has(workerId)) continue;
      this.live.delete(workerId);
      if (this.closing) continue;
      this.log.error({ worker: workerId, slot: worker.slot }, 'model worker died; a replacement is loading');
      this.emit('retired', worker);
    }
  }

  get readyWorkers(): number {
    return this.live.size;
  }

  get workers(): number {
    return this.opts.workers;
  }

  get sequencesPerWorker(): number {
    return this.opts.sequences;
  }

  /** Workers that have loaded the model, with their slots. */
  readyList(): ReadyWorker[] {
    return [...this.live.values()];
  }

  /** Resolves when every worker has loaded the model. */
  whenReady(): Promise<void> {
    if (this.readyWorkers >= this.opts.workers) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Sends a request to every worker; answers arrive as events. */
  broadcast(msg: WorkerRequest): void {
    this.channel.postMessage(msg);
  }

  /**
   * Starts a task and returns the main side of its port. The task promise is returned separately:
   * it may settle before the last port message arrives, so streams end on the port's done/error.
   */
  run(task: EngineTask): { port: MessagePort; settled: Promise<unknown> } {
    const { port1, port2 } = new MessageChannel();
    const settled = this.piscina.run({ ...task, port: port2 } satisfies ModelTask, { transferList: [port2] });
    return { port: port1, settled };
  }

  /** Closes the pool; only call it when no task is running (closing a busy worker aborts the process). */
  async close(): Promise<void> {
    this.closing = true;
    this.channel.close();
    await this.piscina.close();
  }
}
