/**
 * The front's handle on one engine process: starts it (node:child_process fork with its own
 * CUDA_VISIBLE_DEVICES), relays tasks and metrics over IPC, and restarts it with back-off when it
 * exits. A dying engine takes only its own requests with it: they fail with EngineFailedError (503),
 * and the counters of its last collection stay behind as a baseline that every later collection of
 * this engine includes, so its merged counters never go backwards across restarts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { EngineFailedError } from '../errors.js';
import type { PoolOptions } from './local/model-pool.js';
import type { MainMessage, WorkerMessage } from '../shared/protocol.js';
import { Baselines } from '../metrics/baselines.js';
import type { MetricJson } from '../metrics/json.js';
import { RestartBackoff } from './backoff.js';
import type {
  Engine,
  EngineCollection,
  EngineLabels,
  EngineEvents,
  EngineState,
  EngineStatus,
  EngineTask,
  TaskChannel,
  WorkerSnapshot,
} from './engine.js';
import type { EngineMessage, FrontMessage } from './ipc.js';
import type { EngineSpec } from './plan.js';

const ENTRY = fileURLToPath(new URL('./engine-main.js', import.meta.url));

/** The front waits this much longer than the engine waits for its workers. */
const COLLECT_MARGIN_MS = 250;
/** How long a closing engine gets to close its pool and exit before it is killed. */
const CLOSE_GRACE_MS = 10_000;

export interface ProcessEngineOptions {
  pool: PoolOptions;
  metricsPerWorker: boolean;
  logLevel: string;
}

/** A task running in the engine process, as the front's Job sees it. */
class RemoteTask implements TaskChannel {
  private listener: ((msg: WorkerMessage) => void) | undefined;
  private closed = false;
  readonly settled: Promise<unknown>;
  resolve!: () => void;
  reject!: (err: Error) => void;

  constructor(private readonly cancel: (msg: MainMessage) => void) {
    this.settled = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  onMessage(listener: (msg: WorkerMessage) => void): void {
    this.listener = listener;
  }

  deliver(msg: WorkerMessage): void {
    if (!this.closed) this.listener?.(msg);
  }

  send(msg: MainMessage): void {
    this.cancel(msg);
  }

  /** The request has ended; the entry stays until the engine reports the task settled. */
  close(): void {
    this.closed = true;
  }
}

export class ProcessEngine extends EventEmitter<EngineEvents> implements Engine {
  readonly index: number;
  readonly device: string;
  readonly labels: EngineLabels;
  private child: ChildProcess | undefined;
  private state: EngineState = 'starting';
  private ready = 0;
  private pid = 0;
  private cudaVisibleDevices: string | null = null;
  private restarts = 0;
  private readonly backoff = new RestartBackoff();
  private restartTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private nextId = 1;
  private readonly tasks = new Map<number, RemoteTask>();
  private readonly collects = new Map<number, (c: EngineCollection) => void>();
  /** The last reply of the current process: stands in when it is late, and becomes a baseline when it exits. */
  private last: { metrics: MetricJson[]; workers: WorkerSnapshot[] } | undefined;
  /** Counters and histograms of this engine's earlier processes, as their last replies had them. */
  /** Counters of this engine's earlier processes. */
  private readonly baselines = new Baselines<'engine'>();
  private readonly readyWaiters: (() => void)[] = [];
  private exitWaiters: (() => void)[] = [];

  constructor(
    private readonly spec: EngineSpec,
    private readonly opts: ProcessEngineOptions,
    private readonly log: Logger,
  ) {
    super();
    this.index = spec.index;
    this.device = spec.device;
    this.labels = { engine: String(spec.index), device: spec.device };
    this.start();
  }

  private start(): void {
    this.state = 'starting';
    const child = fork(ENTRY, [], {
      // CUDA numbers devices fastest-first by default, NVML by PCI bus: PCI_BUS_ID makes CUDA's index N
      // the GPU that NVML (and so qwen_gpu_*{device="cuda:N"}) calls N.
      env: { ...process.env, CUDA_VISIBLE_DEVICES: this.spec.cudaVisibleDevices, CUDA_DEVICE_ORDER: 'PCI_BUS_ID' },
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    child.on('message', (msg: EngineMessage) => this.onMessage(msg));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    // A failed send (the channel closed under us) shows up as 'exit' too; without a listener it would throw.
    child.on('error', (err) => this.log.error({ err, engine: this.index }, 'engine process error'));
  }

  private post(msg: FrontMessage): boolean {
    if (!this.child?.connected) return false;
    try {
      this.child.send(msg);
      return true;
    } catch {
      return false;
    }
  }

  private onMessage(msg: EngineMessage): void {
    switch (msg.type) {
      case 'hello':
        this.pid = msg.pid;
        this.cudaVisibleDevices = msg.cudaVisibleDevices;
        this.state = 'loading';
        this.log.info(
          { engine: this.index, device: this.device, pid: msg.pid, cudaVisibleDevices: msg.cudaVisibleDevices },
          'engine process started',
        );
        this.post({
          type: 'init',
          index: this.index,
          device: this.device,
          logLevel: this.opts.logLevel,
          pool: this.opts.pool,
          metricsPerWorker: this.opts.metricsPerWorker,
        });
        break;
      case 'workers':
        this.ready = msg.ready;
        if (msg.ready > 0 && this.state !== 'ready') {
          this.state = 'ready';
          this.backoff.up();
        }
        if (msg.ready === 0 && this.state === 'ready') this.state = 'loading';
        if (msg.llamaCpp) this.emit('ready', { llamaCpp: msg.llamaCpp });
        if (this.ready >= this.opts.pool.workers) this.readyWaiters.splice(0).forEach((f) => f());
        this.emit('change');
        break;
      case 'load_failed':
        this.emit('loadFailed', msg.message);
        break;
      case 'job':
        this.tasks.get(msg.jobId)?.deliver(msg.msg);
        break;
      case 'settled': {
        const task = this.tasks.get(msg.jobId);
        this.tasks.delete(msg.jobId);
        if (!task) break;
        if (msg.error === undefined) task.resolve();
        else task.reject(new Error(msg.error));
        break;
      }
      case 'metrics':
        this.last = { metrics: msg.metrics, workers: msg.workers };
        this.collects.get(msg.id)?.(this.view(msg.late));
        break;
      case 'metrics_failed':
        this.collects.get(msg.id)?.({ ...this.view(false), failed: true });
        break;
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    this.child = undefined;
    this.ready = 0;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    // Requests on this engine cannot finish: each gets a clear 503 now rather than a timeout later.
    for (const task of this.tasks.values()) task.reject(new EngineFailedError(this.index, this.device, how));
    this.tasks.clear();
    // Baseline first, then answer waiting scrapes: the dead process's counts are in each answer exactly once.
    this.baselines.retire('engine', this.last?.metrics);
    this.last = undefined;
    for (const resolve of this.collects.values()) resolve(this.view(false));
    this.collects.clear();
    this.exitWaiters.splice(0).forEach((f) => f());
    if (this.closing) {
      this.state = 'stopped';
      return;
    }
    this.state = 'restarting';
    this.restarts++;
    const delay = this.backoff.exited();
    this.log.error(
      { engine: this.index, device: this.device, pid: this.pid, how, restartInMs: delay, restarts: this.restarts },
      'engine process exited; restarting it',
    );
    this.emit('exited');
    this.emit('change');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.closing) this.start();
    }, delay);
  }

  /** The engine's metrics as of now: the current process's last reply (if any) and the earlier processes' baselines. */
  private view(late: boolean): EngineCollection {
    const parts = this.last ? [this.last.metrics, ...this.baselines.all()] : this.baselines.all();
    return { parts, late, workers: this.last?.workers ?? [] };
  }

  get workers(): number {
    return this.opts.pool.workers;
  }

  get readyWorkers(): number {
    return this.ready;
  }

  get sequencesPerWorker(): number {
    return this.opts.pool.sequences;
  }

  get readySequences(): number {
    return this.child ? this.ready * this.opts.pool.sequences : 0;
  }

  run(task: EngineTask): TaskChannel {
    const jobId = this.nextId++;
    const remote = new RemoteTask((msg) => this.post({ type: 'cancel', jobId, reason: msg.reason }));
    this.tasks.set(jobId, remote);
    if (!this.post({ type: 'run', jobId, task })) {
      this.tasks.delete(jobId);
      remote.reject(new EngineFailedError(this.index, this.device, 'not running'));
    }
    return remote;
  }

  collect(timeoutMs: number): Promise<EngineCollection> {
    const id = this.nextId++;
    // A process still starting has nothing to report yet; a dead one's counters are already a baseline.
    if (this.state === 'starting' || !this.post({ type: 'collect', id, timeoutMs })) return Promise.resolve(this.view(false));
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.collects.delete(id);
        resolve(this.view(true));
      }, timeoutMs + COLLECT_MARGIN_MS);
      this.collects.set(id, (c) => {
        clearTimeout(timer);
        this.collects.delete(id);
        resolve(c);
      });
    });
  }

  status(): EngineStatus {
    return {
      engine: this.index,
      device: this.device,
      state: this.state,
      pid: this.pid,
      cudaVisibleDevices: this.cudaVisibleDevices,
      workers: { ready: this.ready, total: this.opts.pool.workers },
      restarts: this.restarts,
    };
  }

  whenReady(): Promise<void> {
    if (this.ready >= this.opts.pool.workers) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Asks the (idle) engine to close its pool and exit; kills it if it has not within the grace period. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) {
      this.state = 'stopped';
      return;
    }
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    // Before its hello the process may not be listening yet (a message then would be lost): stop it outright.
    if (this.state === 'starting' || !this.post({ type: 'close' })) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), CLOSE_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
}
