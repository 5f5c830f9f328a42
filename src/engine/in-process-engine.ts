/**
 * The engine whose pool of model workers lives in the current process: the server's own in the
 * default mode, and the whole of an engine process (engine-main.ts) in the multi-GPU mode. It adapts
 * the pool's MessagePorts to TaskChannels and gathers its workers' metrics with its own registry.
 */
import { EventEmitter } from 'node:events';
import type { MessagePort } from 'node:worker_threads';
import type { Logger } from 'pino';
import { EngineMetrics } from '../metrics/engine-metrics.js';
import { WorkerCollector } from './local/worker-collector.js';
import { ModelPool, type PoolOptions } from './local/model-pool.js';
import type { MainMessage, WorkerMessage } from '../shared/protocol.js';
import type { Engine, EngineCollection, EngineEvents, EngineStatus, EngineTask, TaskChannel } from './engine.js';

export interface InProcessEngineOptions {
  pool: PoolOptions;
  /** Label worker series with worker="slot" instead of merging them. */
  metricsPerWorker: boolean;
  /** Add this process's Node.js metrics to the engine's registry (only when it is a process of its own). */
  processMetrics: boolean;
  index?: number;
  device?: string;
}

function portChannel(port: MessagePort, settled: Promise<unknown>): TaskChannel {
  return {
    onMessage: (listener) => port.on('message', (msg: WorkerMessage) => listener(msg)),
    send: (msg: MainMessage) => {
      try {
        port.postMessage(msg);
      } catch {
        // The channel is already closed: the task has ended on its own.
      }
    },
    close: () => port.close(),
    settled,
  };
}

export class InProcessEngine extends EventEmitter<EngineEvents> implements Engine {
  readonly index: number;
  readonly device: string;
  readonly labels = undefined;
  private readonly pool: ModelPool;
  private readonly workerMetrics: WorkerCollector;
  private readonly metrics: EngineMetrics;

  constructor(opts: InProcessEngineOptions, log: Logger) {
    super();
    this.index = opts.index ?? 0;
    this.device = opts.device ?? 'local';
    this.pool = new ModelPool(opts.pool, log);
    this.workerMetrics = new WorkerCollector(this.pool, opts.metricsPerWorker);
    this.metrics = new EngineMetrics(opts.processMetrics);
    this.pool.on('ready', (w) => {
      this.emit('ready', { llamaCpp: w.llamaCpp });
      this.emit('change');
    });
    this.pool.on('retired', () => {
      this.metrics.workerRestarted();
      this.emit('change');
    });
    this.pool.on('loadFailed', (message) => this.emit('loadFailed', message));
  }

  get workers(): number {
    return this.pool.workers;
  }

  get readyWorkers(): number {
    return this.pool.readyWorkers;
  }

  get sequencesPerWorker(): number {
    return this.pool.sequencesPerWorker;
  }

  /**
   * Only ready workers' sequences: a task admitted beyond them would wait inside Piscina for a worker
   * that is still loading, where qwen_requests_waiting cannot see it; it waits in the front's queue instead.
   */
  get readySequences(): number {
    return this.pool.readyWorkers * this.pool.sequencesPerWorker;
  }

  run(task: EngineTask): TaskChannel {
    const { port, settled } = this.pool.run(task);
    return portChannel(port, settled);
  }

  async collect(timeoutMs: number): Promise<EngineCollection> {
    const { parts, late, workers } = await this.workerMetrics.collect(timeoutMs);
    parts.push(await this.metrics.json());
    return { parts, late, workers };
  }

  status(): EngineStatus {
    const ready = this.pool.readyWorkers;
    return {
      engine: this.index,
      device: this.device,
      state: ready > 0 ? 'ready' : 'loading',
      pid: process.pid,
      cudaVisibleDevices: null,
      workers: { ready, total: this.pool.workers },
      // Worker restarts are a metric (qwen_worker_restarts_total); this counts the engine's own.
      restarts: 0,
    };
  }

  whenReady(): Promise<void> {
    return this.pool.whenReady();
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
