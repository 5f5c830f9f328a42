/** The workerData of a model worker loaded in the test's own process (tiny model, CPU, one thread, small context). */
import type { WorkerInit } from '../../src/shared/protocol.js';

export function tinyWorkerInit(modelPath: string, sequences: number): WorkerInit {
  return {
    modelPath,
    modelId: 'tiny',
    channel: 'test',
    timeBuckets: [],
    faults: false,
    threads: 1,
    sequences,
    contextSize: 256,
    batchSize: 64,
    gpu: 'off',
    gpuLayers: 0,
    grammarCacheSize: 0,
  };
}
