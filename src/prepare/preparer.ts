/**
 * The pool of tokenizer workers (workers/prepare-worker.ts): tokenizing, chat templates, grammars and
 * /tokenize run there, so the main thread does no work that grows with a request beyond parsing it, and a
 * model worker's decode loop never waits for one. A bounded queue in front (429 beyond, like the model
 * queue); a job's own cost is bounded by the body limit and linear algorithms (README, "Limits").
 *
 * Piscina settings as for the model pool (DESIGN.md): fixed thread count, no idle timeout, atomics off.
 * Jobs are never aborted: a worker is not terminated in the middle of a native call.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { ApiError, InternalError, NotReadyError, QueueFullError } from '../errors.js';
import type { PrepareControl, PrepareInit, PrepareJob, PrepareResult } from '../shared/prepare-protocol.js';
import type { LlamaLogMessage } from '../shared/protocol.js';
import { logLlama } from '../log.js';

const WORKER_FILE = fileURLToPath(new URL('../../workers/prepare-worker.js', import.meta.url));

export interface PreparerOptions extends PrepareInit {
  threads: number;
  /** Jobs that may wait for a tokenizer worker; more get 429. */
  maxQueue: number;
}

/** What a job's caller learns besides its result: how long it waited and ran (metrics). */
export interface PrepareObserver {
  prepared(op: PrepareJob['op'], seconds: number): void;
}

type Ok<K extends PrepareJob['op']> = Extract<PrepareResult, { ok: true; op: K }>;

export class Preparer {
  private readonly piscina: Piscina;
  private vocabSize: number | undefined;
  private loadError: string | undefined;
  private readonly maxQueue: number;

  constructor(
    opts: PreparerOptions,
    private readonly log: Logger,
    private readonly observer?: PrepareObserver,
  ) {
    const { threads, maxQueue, ...init } = opts;
    this.maxQueue = maxQueue;
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
      if (msg.type === 'prepare_ready') this.vocabSize = msg.vocabularySize;
      else if (msg.type === 'prepare_failed') {
        this.loadError = msg.message;
        log.error({ err: msg.message }, 'a tokenizer worker could not load the vocabulary');
      } else if (msg.type === 'llama_log') logLlama(log, msg, 'tokenizer');
    });
    this.piscina.on('error', (err: unknown) => log.error({ err }, 'tokenizer worker error'));
  }

  /** Tokens in the model's vocabulary, once a worker has loaded it. */
  get vocabularySize(): number | undefined {
    return this.vocabSize;
  }

  get ready(): boolean {
    return this.vocabSize !== undefined;
  }

  /** Runs one job; a client error in it is thrown as the ApiError the route answers with. */
  async run<K extends PrepareJob['op']>(job: PrepareJob & { op: K }): Promise<Ok<K>> {
    if (!this.ready) throw new NotReadyError(this.loadError ? `The vocabulary could not be loaded: ${this.loadError}` : undefined);
    if (this.piscina.queueSize >= this.maxQueue) throw new QueueFullError(1);
    const started = performance.now();
    let result: PrepareResult;
    try {
      result = (await this.piscina.run(job)) as PrepareResult;
    } catch (err) {
      this.log.error({ err, op: job.op }, 'a tokenizer job failed');
      throw new InternalError('The request could not be prepared (tokenizer worker failure).');
    } finally {
      this.observer?.prepared(job.op, (performance.now() - started) / 1000);
    }
    if (!result.ok) {
      if (result.error.status >= 500)
        this.log.error({ code: result.error.code, detail: result.detail, op: job.op }, 'a tokenizer job failed');
      const e = result.error;
      throw new ApiError(e.status, e.type, e.code, e.message, e.param);
    }
    return result as Ok<K>;
  }

  /** Closes the pool once no job runs (jobs are short; requests are drained before this). */
  async close(): Promise<void> {
    await this.piscina.close();
  }
}
