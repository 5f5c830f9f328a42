/**
 * Builds the engines the configuration asks for: the single in-process engine by default, or one
 * engine process per planned GPU entry (--gpus / --engines), every one with the same pool options.
 */
import type { Logger } from 'pino';
import { threadsPerWorker, type Config } from '../config/config.js';
import type { PoolOptions } from './local/model-pool.js';
import type { Engine } from './engine.js';
import { InProcessEngine } from './in-process-engine.js';
import { planEngines, type EngineSpec } from './plan.js';
import { ProcessEngine } from './process-engine.js';

export interface ModelRef {
  path: string;
  id: string;
}

export function createEngines(config: Config, model: ModelRef, log: Logger, gpuCount: () => number | undefined): Engine[] {
  const specs = planEngines(config.gpus, config.engines, gpuCount);
  const threads = threadsPerWorker(config, specs?.length ?? 1);
  log.info({ threads, workers: config.workers, engines: specs?.length ?? 'in-process' }, 'threads per worker');
  const pool = (spec?: EngineSpec): PoolOptions => ({
    workers: config.workers,
    modelPath: model.path,
    threads,
    sequences: config.sequences,
    contextSize: config.contextSize,
    batchSize: config.batchSize,
    // An engine without a GPU must not probe for one (CUDA_VISIBLE_DEVICES is empty there anyway).
    gpu: spec?.device === 'cpu' ? 'off' : config.gpu,
    gpuLayers: config.gpuLayers,
    modelId: model.id,
    timeBuckets: config.latencyBuckets,
    faults: config.testFaults,
    grammarCacheSize: config.grammarCacheSize,
  });
  if (!specs) return [new InProcessEngine({ pool: pool(), metricsPerWorker: config.metricsPerWorker, processMetrics: false }, log)];
  log.info({ engines: specs.map((s) => ({ engine: s.index, device: s.device })) }, 'starting engine processes');
  return specs.map(
    (spec) => new ProcessEngine(spec, { pool: pool(spec), metricsPerWorker: config.metricsPerWorker, logLevel: config.logLevel }, log),
  );
}
