/**
 * Which engine processes to start: one per --gpus entry (or --engines N of them, spread over the
 * listed GPUs in turn), each with the CUDA_VISIBLE_DEVICES that pins it to its GPU.
 */
import type { GpusFlag } from '../config/config.js';
import { ConfigError } from '../errors.js';

export interface EngineSpec {
  index: number;
  /** Label value: `cuda:N` (as the qwen_gpu_* series name the GPU) or `cpu`. */
  device: string;
  /** '' hides every GPU from the engine. */
  cudaVisibleDevices: string;
}

/**
 * @param gpuCount GPUs NVML reports (undefined without NVML); only asked for with --gpus all
 * @returns undefined when neither flag is given: the pool then runs in the server's own process
 */
export function planEngines(
  gpus: GpusFlag | undefined,
  engines: number | undefined,
  gpuCount: () => number | undefined,
): EngineSpec[] | undefined {
  if (gpus === undefined && engines === undefined) return undefined;
  let devices: number[] = [];
  if (gpus === 'all') {
    const count = gpuCount();
    if (count === undefined)
      throw new ConfigError(
        '--gpus all needs NVML to count the GPUs and it could not be loaded (see --nvml-library); list them instead, e.g. --gpus 0,1',
      );
    if (count === 0) throw new ConfigError('--gpus all: NVML reports no GPU');
    devices = Array.from({ length: count }, (_, i) => i);
  } else if (Array.isArray(gpus)) {
    devices = gpus;
  }
  const n = engines ?? Math.max(1, devices.length);
  return Array.from({ length: n }, (_, index) => {
    if (devices.length === 0) return { index, device: 'cpu', cudaVisibleDevices: '' };
    const gpu = devices[index % devices.length]!;
    return { index, device: `cuda:${gpu}`, cudaVisibleDevices: String(gpu) };
  });
}
