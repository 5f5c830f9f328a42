/**
 * The main thread's registry: the tutorial's HTTP metrics, admission and outcomes, pool state, GPU
 * gauges (read from NVML at scrape time) and build info, plus Node.js process metrics once.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { GpuReader } from '../gpu/nvml.js';
import {
  CLIENT_ERROR_CODES,
  FEATURES,
  FINISH_REASONS,
  PREPARE_LANES,
  PREPARE_OPS,
  type PrepareLane,
  type PrepareOp,
  GENERATION_ENDPOINTS,
  MAIN,
  REJECT_REASONS,
  type ApiEndpoint,
  type EndpointLabel,
  type EngineLabels,
  type Feature,
  type FinishOutcome,
  type RejectReason,
  UNLOAD_REASONS,
  type UnloadReason,
} from './definitions.js';
import { ExemplarStore } from './exemplars.js';
import { counter, gauge, histogram } from './factory.js';

/** A model's dispatcher state as the gauges read it at scrape time (summed over its engines). */
interface PoolState {
  /** Requests holding a sequence (qwen_requests_running). */
  running: number;
  /** Requests queued for a free sequence (qwen_requests_waiting). */
  waiting: number;
  /**
   * Sequences of the workers that have loaded the model (ready workers × --sequences): how many requests
   * may run at once right now; reported as qwen_sequences_capacity. Not the configured total: a loading or
   * dead worker's sequences do not count.
   */
  readySequences: number;
  /** Model workers that have loaded the model (qwen_workers_ready). */
  workersReady: number;
}

/** One served model, as its gauges read it at scrape time. */
export interface ModelSource {
  id: string;
  pool(): PoolState;
  /** Its engines are started (loading or ready); false for an unloaded on-demand model. */
  resident(): boolean;
  /** Its engine processes now (none in-process or unloaded), with whether each is up. */
  engineStatus(): { labels: EngineLabels; up: boolean }[];
  /** Every engine process it runs when loaded (none in-process). */
  engineProcesses: readonly EngineLabels[];
}

export interface MainMetricsOptions {
  version: string;
  timeBuckets: number[];
  /** Every served model: each model-labelled series exists for each of them from the start. */
  models: readonly ModelSource[];
  /**
   * NVML reader; absent when there is no GPU library, and then no GPU series exist. With engine processes,
   * the GPU series cover only their devices, each labelled with the engine(s) using it.
   */
  gpu?: GpuReader;
  /** The API's routes, whose series exist at 0 from the start: rate() needs a sample from before the first request. */
  routes: readonly { method: string; endpoint: ApiEndpoint }[];
}

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

export class MainMetrics {
  readonly registry = new Registry();
  /** Trace ids of sampled requests beside the latency buckets they fell in, written into OpenMetrics scrapes. */
  readonly exemplars = new ExemplarStore();
  private readonly requests;
  private readonly duration;
  private readonly active;
  private readonly finishedTotal;
  private readonly rejectedTotal;
  private readonly featureRequests;
  private readonly toolCallsTotal;
  private readonly queueTime;
  private readonly prepareTime;
  private readonly grammarCache;
  private readonly engineRestarts;
  private readonly loads;
  private readonly unloads;
  private readonly collectTimeouts;
  private readonly collectFailures;
  private readonly clientErrors;
  private readonly buildInfo;

  constructor(private readonly opts: MainMetricsOptions) {
    const r = this.registry;
    this.requests = counter(MAIN.requests, r);
    this.duration = histogram(MAIN.duration, r, opts.timeBuckets);
    this.active = gauge(MAIN.active, r);
    this.finishedTotal = counter(MAIN.finished, r);
    this.rejectedTotal = counter(MAIN.rejected, r);
    this.featureRequests = counter(MAIN.features, r);
    this.toolCallsTotal = counter(MAIN.toolCalls, r);
    this.queueTime = histogram(MAIN.queueTime, r, opts.timeBuckets);
    this.prepareTime = histogram(MAIN.prepareTime, r, opts.timeBuckets);
    this.grammarCache = counter(MAIN.grammarCache, r);
    this.engineRestarts = counter(MAIN.engineRestarts, r);
    this.loads = counter(MAIN.loads, r);
    this.unloads = counter(MAIN.unloads, r);
    this.collectTimeouts = counter(MAIN.collectTimeouts, r);
    this.collectFailures = counter(MAIN.collectFailures, r);
    this.clientErrors = counter(MAIN.clientErrors, r);
    this.buildInfo = gauge(MAIN.buildInfo, r);
    for (const labels of opts.routes) {
      this.requests.inc(labels, 0);
      this.duration.zero(labels);
    }
    for (const { id } of opts.models) {
      const model = { model: id };
      for (const reason of FINISH_REASONS) this.finishedTotal.inc({ ...model, finish_reason: reason }, 0);
      for (const reason of REJECT_REASONS) if (reason !== 'unauthorized') this.rejectedTotal.inc({ ...model, reason }, 0);
      for (const endpoint of GENERATION_ENDPOINTS)
        for (const feature of FEATURES) this.featureRequests.inc({ ...model, endpoint, feature }, 0);
      this.toolCallsTotal.inc(model, 0);
      this.queueTime.zero(model);
      for (const op of PREPARE_OPS) for (const lane of PREPARE_LANES) this.prepareTime.zero({ ...model, op, lane });
      for (const result of ['hit', 'miss']) this.grammarCache.inc({ ...model, result }, 0);
      this.loads.inc(model, 0);
      for (const reason of UNLOAD_REASONS) this.unloads.inc({ ...model, reason }, 0);
    }
    // Refused before the request's model is known: no model label.
    this.rejectedTotal.inc({ reason: 'unauthorized' }, 0);
    this.collectTimeouts.inc(0);
    this.collectFailures.inc(0);
    for (const code of CLIENT_ERROR_CODES) this.clientErrors.inc({ code }, 0);
    this.active.set(0);
    this.setLlamaCpp('unknown');

    const models = opts.models;
    // One read of each model's pool per scrape: the first gauge reads, the others take its numbers.
    let pools: PoolState[] = [];
    gauge(MAIN.running, r, function () {
      pools = models.map((m) => m.pool());
      models.forEach((m, i) => this.set({ model: m.id }, pools[i]!.running));
    });
    gauge(MAIN.waiting, r, function () {
      models.forEach((m, i) => this.set({ model: m.id }, pools[i]!.waiting));
    });
    gauge(MAIN.readySequences, r, function () {
      models.forEach((m, i) => this.set({ model: m.id }, pools[i]!.readySequences));
    });
    gauge(MAIN.workersReady, r, function () {
      models.forEach((m, i) => this.set({ model: m.id }, pools[i]!.workersReady));
    });
    gauge(MAIN.resident, r, function () {
      for (const m of models) this.set({ model: m.id }, m.resident() ? 1 : 0);
    });
    const engineProcesses = models.flatMap((m) => m.engineProcesses);
    for (const m of models) for (const labels of m.engineProcesses) this.engineRestarts.inc({ model: m.id, ...labels }, 0);
    if (engineProcesses.length > 0) {
      gauge(MAIN.engineUp, r, function () {
        // An unloaded model's engines are gone, not down: their series go.
        this.reset();
        for (const m of models) for (const e of m.engineStatus()) this.set({ model: m.id, ...e.labels }, e.up ? 1 : 0);
      });
    }
    // A model in the server's own process may use any GPU: then every device is reported.
    const onlyEngineDevices = engineProcesses.length > 0 && models.every((m) => m.engineProcesses.length > 0);
    if (opts.gpu) this.registerGpu(opts.gpu, engineByDevice(engineProcesses), onlyEngineDevices);
    collectDefaultMetrics({ register: r });
    dropTotalGauges(r);
  }

  /**
   * @param engineOf device label → the engine label for it
   * @param onlyEngineDevices report only the engines' devices (every model runs in engine processes)
   */
  private registerGpu(gpu: GpuReader, engineOf: Map<string, string>, onlyEngineDevices: boolean): void {
    const r = this.registry;
    // The first gauge's collect reads NVML (cached for a second) and fills all four, in registration
    // order; reset() drops devices that disappeared instead of reporting stale values.
    const used = gauge(MAIN.gpuMemoryUsed, r, () => {
      const devices = gpu.devices();
      for (const g of [used, total, util, info]) g.reset();
      for (const d of devices) {
        const engine = engineOf.get(d.device);
        // With engine processes only, a GPU none of them was given is not this server's to report.
        if (onlyEngineDevices && engine === undefined) continue;
        const labels = engine === undefined ? { device: d.device } : { device: d.device, engine };
        // A value NVML could not read is left out rather than reported as 0.
        if (Number.isFinite(d.memoryUsedBytes)) used.set(labels, d.memoryUsedBytes);
        if (Number.isFinite(d.memoryTotalBytes)) total.set(labels, d.memoryTotalBytes);
        if (Number.isFinite(d.utilizationRatio)) util.set(labels, d.utilizationRatio);
        info.set({ ...labels, name: d.name, uuid: d.uuid }, 1);
      }
    });
    const total = gauge(MAIN.gpuMemoryTotal, r);
    const util = gauge(MAIN.gpuUtilization, r);
    const info = gauge(MAIN.gpuInfo, r);
    // After the gauges, so a scrape counts the failures of its own read.
    counter(MAIN.gpuReadErrors, r, function () {
      this.reset();
      for (const [call, n] of gpu.readErrors()) this.inc({ call }, n);
    });
  }

  /**
   * Call when an API request starts (`endpoint`: its route's template, src/http/request-context.ts decides
   * it); the returned function when its response has ended, with the request's trace id when it was traced
   * and sampled (its duration becomes an exemplar).
   */
  httpRequest(method: string, endpoint: EndpointLabel): (traceId?: string) => void {
    const labels = { method: METHODS.has(method) ? method : 'other', endpoint };
    this.active.inc();
    const end = this.duration.startTimer(labels);
    return (traceId) => {
      this.active.dec();
      const seconds = end();
      this.requests.inc(labels);
      if (traceId !== undefined) this.exemplars.record(MAIN.duration.name, labels, seconds, traceId);
    };
  }

  /** @param model the served model the request named; undefined when it was refused before that was known */
  rejected(reason: RejectReason, model?: string): void {
    this.rejectedTotal.inc(model === undefined ? { reason } : { model, reason });
  }

  /** An admitted generation request that uses these features. */
  features(model: string, endpoint: EndpointLabel | undefined, features: readonly Feature[]): void {
    if (endpoint === undefined) return;
    for (const feature of features) this.featureRequests.inc({ model, endpoint, feature });
  }

  toolCalls(model: string, count: number): void {
    if (count > 0) this.toolCallsTotal.inc({ model }, count);
  }

  finished(model: string, reason: FinishOutcome): void {
    this.finishedTotal.inc({ model, finish_reason: reason });
  }

  /** A tokenizer-worker job ended (successfully or not). */
  prepared(model: string, op: PrepareOp, lane: PrepareLane, seconds: number): void {
    this.prepareTime.observe({ model, op, lane }, seconds);
  }

  /** A request's grammar came from the composed-grammar cache, or not. */
  grammarComposed(model: string, cached: boolean): void {
    this.grammarCache.inc({ model, result: cached ? 'hit' : 'miss' });
  }

  queued(model: string, seconds: number): void {
    this.queueTime.observe({ model }, seconds);
  }

  engineRestarted(model: string, labels: EngineLabels): void {
    this.engineRestarts.inc({ model, ...labels });
  }

  /** A model's engines were started: at start, or at an on-demand model's request. */
  modelLoaded(model: string): void {
    this.loads.inc({ model });
  }

  modelUnloaded(model: string, reason: UnloadReason): void {
    this.unloads.inc({ model, reason });
  }

  /** A request Node's HTTP parser refused; `code` is one of CLIENT_ERROR_CODES (anything else counts as bad_request). */
  clientError(code: string): void {
    this.clientErrors.inc({ code: (CLIENT_ERROR_CODES as readonly string[]).includes(code) ? code : 'bad_request' });
  }

  collectTimedOut(): void {
    this.collectTimeouts.inc();
  }

  collectFailed(): void {
    this.collectFailures.inc();
  }

  setLlamaCpp(release: string): void {
    this.buildInfo.reset();
    this.buildInfo.set({ version: this.opts.version, node: process.version, llama_cpp: release }, 1);
  }
}

/**
 * prom-client names three gauges *_total, which promtool rejects ("non-counter metrics should not have
 * _total suffix"); the same numbers remain as nodejs_active_{handles,requests,resources} by type.
 */
export function dropTotalGauges(r: Registry): void {
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    r.removeSingleMetric(name);
  }
}

/** Device label → the engine(s) on it ("0", or "0,2" when --engines puts two engines on one GPU). */
function engineByDevice(labels: EngineLabels[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const { engine, device } of labels) out.set(device, out.has(device) ? `${out.get(device)},${engine}` : engine);
  return out;
}
