/**
 * The tokenizer threads (workers/prepare-worker.ts): tokenizing, chat templates, grammars and /tokenize
 * run there, so the main thread does no work that grows with a request beyond parsing it, and a model
 * worker's decode loop never waits for one. A bounded queue in front (429 beyond, like the model queue); a
 * job's own cost is bounded by the body limit and linear algorithms (README, "Limits").
 *
 * Two lanes, each its own Piscina pool: requests with a large body (HEAVY_BYTES and more: a 1 MB /tokenize,
 * a long document) go to the heavy lane, everything else to the light one. A job takes its thread until it
 * is done, so in one FIFO lane a second of tokenizing a megabyte would hold up every small request behind
 * it (measured: 3.7× the normal requests' time to first token, docs/performance.md). Across lanes the
 * operating system shares the cores, and a heavy request waits only for other heavy ones.
 *
 * Piscina settings as for the model pool (DESIGN.md): fixed thread count, no idle timeout, atomics off.
 * Jobs are never aborted: a worker is not terminated in the middle of a native call.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { logLlama } from '../log.js';
import { ApiError, InternalError, NotReadyError, QueueFullError } from '../errors.js';
import type { PrepareLane } from '../metrics/definitions.js';
import type { PrepareControl, PrepareInit, PrepareJob, PrepareResult } from '../shared/prepare-protocol.js';
import type { LlamaLogMessage } from '../shared/protocol.js';

const WORKER_FILE = fileURLToPath(new URL('../../workers/prepare-worker.js', import.meta.url));

/** How long close() waits for threads still loading the vocabulary (a few hundred ms normally). */
const LOAD_WAIT_MS = 30_000;

/** Request bodies from this size on are prepared in the heavy lane. */
const HEAVY_BYTES = 64 * 1024;

export interface PreparerOptions extends PrepareInit {
  /** Threads of the light lane (--tokenizer-threads); the heavy lane has one. */
  threads: number;
  /** Jobs that may wait in each lane; more get 429. */
  maxQueue: number;
}

/** What a job's caller learns besides its result: how long it waited and ran (metrics). */
export interface PrepareObserver {
  prepared(op: PrepareJob['op'], lane: PrepareLane, seconds: number): void;
}

type Ok<K extends PrepareJob['op']> = Extract<PrepareResult, { ok: true; op: K }>;

/** One pool of tokenizer threads and whether it has loaded the vocabulary. */
class Lane {
  readonly piscina: Piscina;
  readonly name: PrepareLane;
  /** A thread has loaded the vocabulary. */
  ready = false;
  /** What the model is for, as its GGUF says (known once a thread has loaded it). */
  kind: 'generate' | 'embed' | undefined;
  loadError: string | undefined;
  /** Resolves when every thread has loaded the vocabulary or failed to. */
  readonly loaded: Promise<void>;
  /** `loaded` has resolved. */
  settled = false;

  constructor(name: PrepareLane, threads: number, maxQueue: number, init: PrepareInit, log: Logger) {
    this.name = name;
    let settled = 0;
    let allSettled!: () => void;
    this.loaded = new Promise<void>((resolve) => (allSettled = resolve)).then(() => {
      this.settled = true;
    });
    const threadSettled = () => {
      if (++settled >= threads) allSettled();
    };
    this.piscina = new Piscina({
      filename: WORKER_FILE,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      maxQueue,
      atomics: 'disabled',
      workerData: init satisfies PrepareInit,
    });
    this.piscina.on('message', (msg: PrepareControl | LlamaLogMessage) => {
      if (msg.type === 'prepare_ready') {
        this.ready = true;
        this.kind = msg.embedding ? 'embed' : 'generate';
        threadSettled();
      } else if (msg.type === 'prepare_failed') {
        this.loadError = msg.message;
        threadSettled();
        log.error({ err: msg.message, lane: name }, 'a tokenizer worker could not load the vocabulary');
      } else if (msg.type === 'llama_log') logLlama(log, msg, 'tokenizer');
    });
    this.piscina.on('error', (err: unknown) => log.error({ err, lane: name }, 'tokenizer worker error'));
  }
}

export class Preparer {
  private readonly light: Lane;
  private readonly heavy: Lane;
  private readonly maxQueue: number;

  constructor(
    opts: PreparerOptions,
    private readonly log: Logger,
    private readonly observer?: PrepareObserver,
  ) {
    const { threads, maxQueue, ...init } = opts;
    this.maxQueue = maxQueue;
    this.light = new Lane('light', threads, maxQueue, init, log);
    this.heavy = new Lane('heavy', 1, maxQueue, init, log);
  }

  /**
   * Every thread of both lanes has finished loading, and the light lane can take jobs. Not earlier: a thread
   * still loading its vocabulary takes CPU from the first requests (the overload test saw refusals slowed
   * past admitted answers), and it must not be terminated by a shutdown in the middle of that load.
   */
  get ready(): boolean {
    return this.light.ready && this.light.settled && this.heavy.settled;
  }

  /** The model's kind from its GGUF, once ready. */
  get kind(): 'generate' | 'embed' | undefined {
    return this.ready ? this.light.kind : undefined;
  }

  /** Why the vocabulary could not be loaded, when it could not. */
  get loadError(): string | undefined {
    return this.light.settled && !this.light.ready ? this.light.loadError : undefined;
  }

  /**
   * Runs one job; a client error in it is thrown as the ApiError the route answers with.
   * @param bodyBytes size of the request's body: it picks the lane
   */
  async run<K extends PrepareJob['op']>(job: PrepareJob & { op: K }, bodyBytes: number): Promise<Ok<K>> {
    if (!this.ready)
      throw new NotReadyError(this.light.loadError ? `The vocabulary could not be loaded: ${this.light.loadError}` : undefined);
    // A heavy lane that failed to load leaves its jobs to the light one.
    const lane = bodyBytes >= HEAVY_BYTES && this.heavy.ready ? this.heavy : this.light;
    if (lane.piscina.queueSize >= this.maxQueue) throw new QueueFullError(1);
    const started = performance.now();
    let result: PrepareResult;
    try {
      result = (await lane.piscina.run(job)) as PrepareResult;
    } catch (err) {
      this.log.error({ err, op: job.op }, 'a tokenizer job failed');
      throw new InternalError('The request could not be prepared (tokenizer worker failure).');
    } finally {
      this.observer?.prepared(job.op, lane.name, (performance.now() - started) / 1000);
    }
    if (!result.ok) {
      if (result.error.status >= 500)
        this.log.error({ code: result.error.code, detail: result.detail, op: job.op }, 'a tokenizer job failed');
      throw ApiError.fromPayload(result.error);
    }
    return result as Ok<K>;
  }

  /**
   * Closes both lanes once no job runs (jobs are short; requests are drained before this) and every thread
   * has finished loading: a thread terminated while node-llama-cpp loads its vocabulary (an async native
   * call) aborts the whole process, and a shutdown can come before the server was ever ready.
   */
  async close(): Promise<void> {
    const lanes = [this.light, this.heavy];
    await Promise.race([Promise.all(lanes.map((l) => l.loaded)), new Promise((resolve) => setTimeout(resolve, LOAD_WAIT_MS).unref())]);
    await Promise.all(lanes.map((l) => l.piscina.close()));
  }
}
