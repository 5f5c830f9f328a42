/**
 * The served models by id: which one a request means, whether it can serve that request, and which models are
 * resident. On-demand models load at their first request and unload after their keep-alive unused; with
 * --max-resident-models, loading one first unloads the idle on-demand model used longest ago, and a model that
 * finds no room waits (its requests in its queue) until one becomes idle.
 */
import type { Logger } from 'pino';
import { InvalidRequestError, ModelUnavailableError, NotFoundError, NotReadyError } from '../errors.js';
import { readyWorkers } from '../engine/status.js';
import type { ModelKind, ServedModel } from './served-model.js';

/** How often idle on-demand models are looked for. */
const SWEEP_MS = 1000;

const KIND_NAMES: Record<ModelKind, string> = { generate: 'a text-generation model', embed: 'an embedding model' };

export class ModelRegistry {
  private readonly byId: Map<string, ServedModel>;
  /** On-demand models whose requests wait for room under --max-resident-models. */
  private readonly pending = new Set<ServedModel>();
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly list: readonly ServedModel[],
    private readonly maxResident: number,
    private readonly log: Logger,
  ) {
    this.byId = new Map(list.map((m) => [m.id, m]));
  }

  get(id: string): ServedModel | undefined {
    return this.byId.get(id);
  }

  /** Loads every model that is not on-demand, and starts looking for idle on-demand ones. */
  start(): void {
    for (const m of this.list) if (!m.onDemand) m.load();
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /**
   * The model a request names (or, naming none, the first model of the kind its route serves), checked to serve
   * that kind. An unloaded on-demand model starts loading, and the request waits in its queue.
   * @param param the request's field that names the model, for errors
   */
  forRequest(name: string | null | undefined, kind: ModelKind, param = 'model'): ServedModel {
    const model = this.named(name, param) ?? this.defaultFor(kind);
    checkVocabulary(model);
    if (model.kind !== kind) throw wrongKind(model, kind, param);
    this.use(model);
    return model;
  }

  /**
   * The model a request of `kind` that names none goes to: the first model of that kind; while some model's kind
   * is not known yet (its vocabulary is loading), that one, which answers 503 until it is; else the first model.
   */
  defaultFor(kind: ModelKind): ServedModel {
    return this.list.find((m) => m.kind === kind) ?? this.list.find((m) => m.kind === undefined) ?? this.list[0]!;
  }

  /** The model a request names, or the first one; for /tokenize and count_tokens, which need only its vocabulary. */
  vocabulary(name: string | null | undefined, param = 'model'): ServedModel {
    const model = this.named(name, param) ?? this.list[0]!;
    checkVocabulary(model);
    return model;
  }

  private named(name: string | null | undefined, param: string): ServedModel | undefined {
    if (name == null) return undefined;
    const model = this.byId.get(name);
    if (model) return model;
    const ids = this.list.map((m) => `'${m.id}'`).join(', ');
    throw new NotFoundError(
      `The model '${name.slice(0, 200)}' does not exist; this server serves ${ids} (GET /v1/models lists them).`,
      'model_not_found',
      param,
    );
  }

  /** Checks the model can take requests now, loading it if it is an unloaded on-demand model. */
  private use(model: ServedModel): void {
    if (model.state === 'failed') throw new ModelUnavailableError(model.id, model.loadError ?? 'unknown error');
    model.lastUsed = performance.now();
    if (model.onDemand) {
      if (model.state === 'unloaded' || model.state === 'unloading') this.wantLoaded(model);
      return;
    }
    // A model loaded at start takes requests once a worker is ready (503 until then, as a server still starting).
    if (readyWorkers(model.engines) === 0) throw new NotReadyError(`The model '${model.id}' is still loading.`);
  }

  private wantLoaded(model: ServedModel): void {
    if (this.closed) return;
    this.pending.add(model);
    this.loadPending();
  }

  /** A model's state changed: a pending one may now fit, or find its queue waiting after an unload. */
  changed(model: ServedModel): void {
    if (model.state === 'unloaded' && model.dispatcher.busy) this.pending.add(model);
    this.loadPending();
  }

  private residentCount(): number {
    return this.list.filter((m) => m.isResident).length;
  }

  private loadPending(): void {
    for (const model of [...this.pending]) {
      if (this.closed) return;
      if (model.state !== 'unloaded') {
        // Still unloading: changed() brings it back here when done.
        if (model.state !== 'unloading') this.pending.delete(model);
        continue;
      }
      if (this.maxResident > 0 && this.residentCount() >= this.maxResident) {
        this.evictFor(model);
        continue;
      }
      this.pending.delete(model);
      model.load();
    }
  }

  /** Unloads the idle on-demand model used longest ago, to make room for `model`; none idle: it waits. */
  private evictFor(model: ServedModel): void {
    if (this.list.some((m) => m.state === 'unloading')) return;
    const idle = this.list
      .filter((m) => m !== model && m.onDemand && m.state === 'ready' && !m.dispatcher.busy)
      .sort((a, b) => a.lastUsed - b.lastUsed)[0];
    if (!idle) return;
    this.log.info({ model: idle.id, for: model.id }, 'unloading an idle model to make room');
    idle.unload('evicted').catch((err: unknown) => this.log.error({ err, model: idle.id }, 'unloading a model failed'));
  }

  /** Unloads on-demand models unused for their keep-alive; retries loads waiting for room. */
  private sweep(): void {
    const now = performance.now();
    for (const m of this.list) {
      if (!m.onDemand || m.state !== 'ready' || m.dispatcher.busy) continue;
      if (now - m.lastUsed < m.settings.keepAliveSeconds * 1000) continue;
      m.unload('idle').catch((err: unknown) => this.log.error({ err, model: m.id }, 'unloading a model failed'));
    }
    this.loadPending();
  }

  /** Stops loading and unloading (the server is shutting down). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
  }
}

/** A model's tokenizer threads must have loaded its vocabulary (its kind is known then): 503 until, or why not. */
function checkVocabulary(model: ServedModel): void {
  if (model.prepare.ready) return;
  const why = model.prepare.loadError;
  throw why ? new ModelUnavailableError(model.id, why) : new NotReadyError(`The model '${model.id}' is still loading.`);
}

/** A 400 naming what the model is: chat on an embedding model, embeddings on a chat model. */
function wrongKind(model: ServedModel, wanted: ModelKind, param: string): InvalidRequestError {
  const what = `The model '${model.id}' is ${KIND_NAMES[model.kind!]}`;
  if (wanted === 'generate') {
    return new InvalidRequestError(
      `${what} (its GGUF declares a pooling type): use /v1/embeddings, or name a text-generation model.`,
      param,
      'model_not_generative',
    );
  }
  return new InvalidRequestError(
    `${what}, not an embedding model: /v1/embeddings needs a GGUF that declares a pooling type (an embedding model such as gte-Qwen2).`,
    param,
    'model_not_embedding',
  );
}
