/**
 * Builds each model's engines: the single in-process engine by default, or one engine process per planned
 * GPU entry (--gpus / --engines, per model). Engine indices run across every model of the server, so an
 * engine="N" label names one engine process; a GPU two models share reports both engines.
 */
import type { Logger } from 'pino';
import { threadsPerWorker, type Config, type ModelConfig } from '../config/config.js';
import { workersChannel } from '../shared/protocol.js';
import type { PoolOptions } from './local/model-pool.js';
import type { Engine, EngineLabels } from './engine.js';
import { InProcessEngine } from './in-process-engine.js';
import { planEngines, type EngineSpec } from './plan.js';
import { ProcessEngine } from './process-engine.js';

/** A served model's settings once its source is resolved to a file. */
export interface ModelRef extends ModelConfig {
  id: string;
  path: string;
  /** --draft-model's file (--speculative draft). */
  draftModelPath?: string;
}

/** How one model's engines are laid out: its engine processes (undefined: in-process) and threads per worker. */
export interface EnginePlan {
  specs: EngineSpec[] | undefined;
  threads: number;
}

/**
 * Plans every model's engines at once: indices are global, and the default threads per worker share the
 * cores among the workers of all models (on-demand ones included: they may all be resident at once).
 */
export function planModels(models: readonly ModelConfig[], gpuCount: () => number | undefined): EnginePlan[] {
  let next = 0;
  const specs = models.map((m) => {
    const planned = planEngines(m.gpus, m.engines, gpuCount);
    const first = next;
    next += planned?.length ?? 0;
    return planned?.map((s) => ({ ...s, index: first + s.index }));
  });
  const allWorkers = models.reduce((sum, m, i) => sum + m.workers * (specs[i]?.length ?? 1), 0);
  return specs.map((s, i) => ({ specs: s, threads: threadsPerWorker(models[i]!, allWorkers) }));
}

/** The labels of a model's engine processes (none in-process). */
export function engineLabels(plan: EnginePlan): EngineLabels[] {
  return (plan.specs ?? []).map((s) => ({ engine: String(s.index), device: s.device }));
}

export function createEngines(model: ModelRef, plan: EnginePlan, config: Config, log: Logger): Engine[] {
  const { specs, threads } = plan;
  log.info({ model: model.id, threads, workers: model.workers, engines: specs?.length ?? 'in-process' }, 'threads per worker');
  const pool = (spec?: EngineSpec): PoolOptions => ({
    workers: model.workers,
    modelPath: model.path,
    threads,
    sequences: model.sequences,
    contextSize: model.contextSize,
    batchSize: model.batchSize,
    // An engine without a GPU must not probe for one (CUDA_VISIBLE_DEVICES is empty there anyway).
    gpu: spec?.device === 'cpu' ? 'off' : config.gpu,
    gpuLayers: model.gpuLayers,
    modelId: model.id,
    channel: workersChannel(model.id),
    timeBuckets: config.latencyBuckets,
    faults: config.testFaults,
    grammarCacheSize: config.grammarCacheSize,
    speculation: model.speculation && {
      draftMin: model.speculation.draftMin,
      draftMax: model.speculation.draftMax,
      policy: model.speculation.policy,
      draftModelPath: model.draftModelPath,
    },
  });
  if (!specs) return [new InProcessEngine({ pool: pool(), metricsPerWorker: config.metricsPerWorker, processMetrics: false }, log)];
  log.info({ model: model.id, engines: specs.map((s) => ({ engine: s.index, device: s.device })) }, 'starting engine processes');
  return specs.map(
    (spec) => new ProcessEngine(spec, { pool: pool(spec), metricsPerWorker: config.metricsPerWorker, logLevel: config.logLevel }, log),
  );
}
