/**
 * The messages between the front and an engine process, over the child process's IPC channel
 * (advanced serialization: structured clone, like the worker threads' messages). Plain types only.
 */
import type { MetricJson } from '../metrics/json.js';
import type { PoolOptions } from './local/model-pool.js';
import type { CancelReason, WorkerMessage } from '../shared/protocol.js';
import type { EngineTask, WorkerSnapshot } from './engine.js';

export interface EngineInit {
  type: 'init';
  index: number;
  device: string;
  logLevel: string;
  pool: PoolOptions;
  metricsPerWorker: boolean;
}

/** Front → engine process. */
export type FrontMessage =
  | EngineInit
  | { type: 'run'; jobId: number; task: EngineTask }
  | { type: 'cancel'; jobId: number; reason: CancelReason }
  | { type: 'collect'; id: number; timeoutMs: number }
  /** Sent only once the engine is idle: close the pool and exit. */
  | { type: 'close' };

/** Engine process → front. */
export type EngineMessage =
  /** The process is up and listening; the front answers with `init`. */
  | { type: 'hello'; pid: number; cudaVisibleDevices: string | null }
  /** Worker readiness changed (a worker loaded the model, or died). */
  | { type: 'workers'; ready: number; llamaCpp?: string }
  | { type: 'load_failed'; message: string }
  | { type: 'job'; jobId: number; msg: WorkerMessage }
  /** The task settled in the engine (after its last port message); `error` when the worker died. */
  | { type: 'settled'; jobId: number; error?: string }
  | { type: 'metrics'; id: number; metrics: MetricJson[]; late: boolean; workers: WorkerSnapshot[] }
  /** The engine could not collect (it logged why): its last snapshot stands in. */
  | { type: 'metrics_failed'; id: number };
