/**
 * What the front (dispatcher, metrics collector, health) needs from an engine: something that runs
 * tasks on its pool of model workers and reports its metrics. Two kinds exist, with one pool code path:
 * the in-process engine (the pool lives in this process, the default) and the engine process (the same
 * in-process engine, hosted by a child process pinned to one GPU; see process-engine.ts).
 */
import type { EventEmitter } from 'node:events';
import type { EngineLabels } from '../metrics/definitions.js';
import type { MetricJson } from '../metrics/json.js';
import type { MainMessage, TaskSpec, WorkerMessage } from '../shared/protocol.js';

/** A task as an engine receives it: admitted (the dispatcher set its admission time), without its port yet. */
export type EngineTask = TaskSpec & { admittedAtMs: number };

export type { EngineLabels };

/** One running task, seen from the front: its worker messages in, `cancel` out. */
export interface TaskChannel {
  /** Worker messages of this task, in order. Set once, right after run(). */
  onMessage(listener: (msg: WorkerMessage) => void): void;
  send(msg: MainMessage): void;
  /** Stops delivering messages (the request has ended). */
  close(): void;
  /**
   * Settles when the engine has finished with the task (it may settle before the last message is
   * delivered: streams end on the `done`/`error` message). Rejects when the worker or engine died.
   */
  settled: Promise<unknown>;
}

/** A worker's latest snapshot, for the dashboard's per-worker table. */
export interface WorkerSnapshot {
  slot: number;
  workerId: number;
  metrics: MetricJson[];
}

export interface EngineCollection {
  /**
   * Metric families to merge: worker registries, retired workers' baselines, the engine's own registry
   * (an engine process: its merged registry plus the baselines of its earlier processes).
   */
  parts: MetricJson[][];
  /** A worker (or the engine process) missed the timeout: its last snapshot stands in. */
  late: boolean;
  /** The engine process could not collect (it logged why): its last snapshot stands in. */
  failed?: boolean;
  workers: WorkerSnapshot[];
}

export type EngineState = 'starting' | 'loading' | 'ready' | 'restarting' | 'stopped';

/** What /health reports per engine. */
export interface EngineStatus {
  engine: number;
  device: string;
  state: EngineState;
  pid: number;
  /** CUDA_VISIBLE_DEVICES as the engine process itself read it (null when unset). */
  cudaVisibleDevices: string | null;
  workers: { ready: number; total: number };
  restarts: number;
}

export interface EngineEvents {
  /** readySequences changed: a worker became ready or died, the engine process started or exited. */
  change: [];
  /** A worker loaded the model (llama.cpp release for the build-info metric). */
  ready: [{ llamaCpp: string }];
  /** The model cannot be loaded: an operator problem, not something a restart fixes. */
  loadFailed: [string];
  /** The engine process exited unexpectedly and will be restarted. Only engine processes emit it. */
  exited: [];
}

export interface Engine extends EventEmitter<EngineEvents> {
  readonly index: number;
  /** `cuda:N` for an engine pinned to GPU N, `cpu` for an engine without GPUs, `local` in-process. */
  readonly device: string;
  /** Labels its series carry in the merged registry; none for the single in-process engine. */
  readonly labels: EngineLabels | undefined;
  readonly workers: number;
  readonly readyWorkers: number;
  readonly sequencesPerWorker: number;
  /**
   * Sequences of the ready workers (ready workers × sequences): what may run at once right now, and what
   * qwen_sequences_capacity reports. 0 while no worker is ready or the process is down.
   */
  readonly readySequences: number;
  run(task: EngineTask): TaskChannel;
  collect(timeoutMs: number): Promise<EngineCollection>;
  status(): EngineStatus;
  /** Resolves when every worker has loaded the model once. */
  whenReady(): Promise<void>;
  /** Only call when no task is running: closing a busy worker aborts the process. */
  close(): Promise<void>;
}
