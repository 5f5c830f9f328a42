/**
 * One served model: its own engines, pool of model workers, admission queue (dispatcher) and tokenizer
 * threads. A model is loaded at start, or, when on-demand, at its first request; an on-demand model is
 * unloaded when idle (the registry decides when). Its tokenizer threads stay for the life of the server:
 * they hold the vocabulary only, and they tell what the model is for before any weights are loaded.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { Dispatcher } from '../dispatch/dispatcher.js';
import { createEngines, type EnginePlan, type ModelRef } from '../engine/create.js';
import type { Engine } from '../engine/engine.js';
import type { MetricsCollector } from '../engine/metrics-collector.js';
import { readyWorkers } from '../engine/status.js';
import { ModelUnavailableError } from '../errors.js';
import type { MainMetrics } from '../metrics/main-metrics.js';
import type { UnloadReason } from '../metrics/definitions.js';
import { Preparer } from '../prepare/preparer.js';
import type { BudgetLimits } from '../http/core/budget.js';

export type ModelKind = 'generate' | 'embed';

/**
 * unloaded: no engines (an on-demand model before its first request, or after its keep-alive); loading: engines
 * started, no worker ready yet; ready: a worker has loaded it; unloading: its engines are closing; failed: it
 * could not be loaded (its requests get 503 until the server restarts).
 */
export type ModelState = 'unloaded' | 'loading' | 'ready' | 'unloading' | 'failed';

export interface ServedModelDeps {
  config: Config;
  plan: EnginePlan;
  metrics: MainMetrics;
  collector: MetricsCollector;
  log: Logger;
  /** The model's state changed (the registry may load or unload others). */
  changed: (model: ServedModel) => void;
  /** Whether this process's node-llama-cpp is the CPU build (every model runs in engine processes). */
  cpuFront: boolean;
}

export class ServedModel {
  readonly id: string;
  /** Unix seconds when the server started serving it, for /v1/models `created`. */
  readonly createdAt = Math.floor(Date.now() / 1000);
  readonly dispatcher: Dispatcher;
  /** The tokenizer threads: prompts, chat templates, grammars, /tokenize (never on the main thread). */
  readonly prepare: Preparer;
  /** The context and each request's budgets (context-size, max-request-tokens, max-request-logprobs). */
  readonly budgets: BudgetLimits;
  state: ModelState = 'unloaded';
  /** Why it could not be loaded (state failed). */
  loadError: string | undefined;
  /** When a request last named it or ended (performance.now() ms): keep-alive counts from here. */
  lastUsed = performance.now();
  private current: Engine[] = [];
  /** The unload in progress, if any (close() waits for it: its engines are being closed). */
  private unloading: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(
    readonly settings: ModelRef,
    private readonly deps: ServedModelDeps,
  ) {
    const { config, metrics } = deps;
    this.id = settings.id;
    this.log = deps.log.child({ model: settings.id });
    const sequences = settings.workers * (deps.plan.specs?.length ?? 1) * settings.sequences;
    this.budgets = {
      contextSize: settings.contextSize,
      maxRequestTokens: settings.maxRequestTokens,
      maxRequestLogprobs: settings.maxRequestLogprobs,
    };
    const id = settings.id;
    this.dispatcher = new Dispatcher(
      [],
      { maxQueue: settings.maxQueue, requestTimeoutSeconds: config.requestTimeoutSeconds, sequences },
      this.log,
      {
        queueFull: () => metrics.rejected('queue_full', id),
        started: (seconds) => metrics.queued(id, seconds),
        ended: (outcome) => {
          this.lastUsed = performance.now();
          if (outcome.kind === 'finished') metrics.finished(id, outcome.reason);
          else metrics.rejected(outcome.reason, id);
        },
      },
    );
    this.prepare = new Preparer(
      {
        threads: config.tokenizerThreads,
        // Never refuse a request the dispatcher would take: every sequence's worth plus its queue.
        maxQueue: settings.maxQueue + sequences,
        modelPath: settings.path,
        // The process's one node-llama-cpp binary: the model workers' in-process, the CPU build in the front of engine processes.
        gpu: deps.cpuFront ? 'off' : config.gpu,
        faults: config.testFaults,
        logLevel: config.logLevel,
        grammarCacheSize: config.grammarCacheSize,
        maxGrammarRules: config.maxGrammarRules,
        contextSize: settings.contextSize,
      },
      this.log,
      { prepared: (op, lane, seconds) => metrics.prepared(id, op, lane, seconds) },
    );
  }

  /** What the model is for, from its GGUF (known once its tokenizer threads have loaded the vocabulary). */
  get kind(): ModelKind | undefined {
    return this.prepare.kind;
  }

  get onDemand(): boolean {
    return this.settings.onDemand;
  }

  /** Its engines now: none while unloaded. */
  get engines(): readonly Engine[] {
    return this.current;
  }

  /** It holds engines (loading, ready or unloading): it counts against --max-resident-models. */
  get isResident(): boolean {
    return this.current.length > 0;
  }

  pool() {
    return {
      running: this.dispatcher.runningCount,
      waiting: this.dispatcher.waitingCount,
      readySequences: this.dispatcher.readySequences,
      workersReady: readyWorkers(this.current),
    };
  }

  engineStatus(): { labels: { engine: string; device: string }; up: boolean }[] {
    return this.current.flatMap((e) => (e.labels ? [{ labels: e.labels, up: e.readySequences > 0 }] : []));
  }

  /** Starts its engines; the requests waiting in its queue run as workers become ready. */
  load(): void {
    if (this.state !== 'unloaded') return;
    const started = performance.now();
    this.log.info({ onDemand: this.onDemand, waiting: this.dispatcher.waitingCount }, 'loading the model');
    const engines = createEngines(this.settings, this.deps.plan, this.deps.config, this.log);
    this.current = engines;
    this.state = 'loading';
    this.deps.metrics.modelLoaded(this.id);
    for (const engine of engines) {
      engine.on('ready', (w) => {
        this.deps.metrics.setLlamaCpp(w.llamaCpp);
        if (this.state === 'loading' && this.current === engines) {
          this.state = 'ready';
          this.log.info({ seconds: Number(((performance.now() - started) / 1000).toFixed(3)) }, 'model ready');
          this.deps.changed(this);
        }
      });
      engine.on('exited', () => this.deps.metrics.engineRestarted(this.id, engine.labels!));
      engine.on('loadFailed', (message) => this.fail(engines, message));
    }
    this.dispatcher.setEngines(engines);
    this.deps.changed(this);
  }

  /** Resolves when every worker of every engine has loaded the model once (or at once when unloaded). */
  whenReady(): Promise<void> {
    return Promise.all(this.current.map((e) => e.whenReady())).then(() => undefined);
  }

  /**
   * A load that cannot succeed (a bad file, too little memory): the model is marked failed, its queued
   * requests get 503 naming why, and its engines are closed once idle. The other models go on serving.
   */
  private fail(engines: Engine[], message: string): void {
    if (this.state === 'failed' || this.current !== engines) return;
    this.log.error({ message }, 'a model could not be loaded');
    this.state = 'failed';
    this.loadError = message;
    this.dispatcher.failQueued(new ModelUnavailableError(this.id, message));
    this.deps.changed(this);
    this.closeWhenIdle(engines).catch((err: unknown) => this.log.error({ err }, 'closing the engines of a failed model failed'));
  }

  private async closeWhenIdle(engines: Engine[]): Promise<void> {
    await this.dispatcher.idle();
    if (this.current !== engines) return;
    this.current = [];
    this.dispatcher.setEngines([]);
    await Promise.all(engines.map((e) => e.close()));
  }

  /**
   * Unloads an idle on-demand model: its counters are kept (the collector's baseline), then its engines are
   * closed. Only call it while no request uses it (dispatcher not busy): closing a busy worker aborts the process.
   */
  async unload(reason: UnloadReason): Promise<void> {
    if (this.state !== 'ready' || this.dispatcher.busy) return;
    this.unloading = this.unloadNow(reason);
    try {
      await this.unloading;
    } finally {
      this.unloading = undefined;
    }
  }

  private async unloadNow(reason: UnloadReason): Promise<void> {
    const engines = this.current;
    this.state = 'unloading';
    // No task may start on them from here: a request that comes now waits in the queue for the next load.
    this.dispatcher.setEngines([]);
    this.log.info({ reason }, 'unloading the model');
    await this.deps.collector.retire(this.id, engines);
    // Listed by no later collection from here on (retire() kept their counters).
    this.current = [];
    await Promise.all(engines.map((e) => e.close()));
    this.deps.metrics.modelUnloaded(this.id, reason);
    this.state = 'unloaded';
    this.log.info({ reason }, 'model unloaded');
    this.deps.changed(this);
  }

  /** Closes its engines (once idle: the server has drained) and its tokenizer threads. */
  async close(): Promise<void> {
    await this.unloading?.catch(() => {});
    const engines = this.current;
    this.current = [];
    if (this.dispatcher.activeCount === 0) await Promise.all(engines.map((e) => e.close()));
    await this.prepare.close();
  }
}
