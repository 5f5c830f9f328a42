/** Which engine processes --gpus and --engines start, and with which CUDA_VISIBLE_DEVICES. */
import { describe, expect, it } from 'vitest';
import { planEngines } from '../src/engine/plan.js';

const noNvml = () => undefined;
const twoGpus = () => 2;
const short = (specs: ReturnType<typeof planEngines>) =>
  specs?.map((s) => `${s.index}:${s.device}:${JSON.stringify(s.cudaVisibleDevices)}`);

describe('planEngines', () => {
  it('runs the pool in-process when neither flag is given (and does not ask NVML)', () => {
    expect(planEngines(undefined, undefined, () => expect.fail('NVML asked'))).toBeUndefined();
  });

  it('starts one engine per listed GPU, pinned to it', () => {
    expect(short(planEngines([0, 2], undefined, noNvml))).toEqual(['0:cuda:0:"0"', '1:cuda:2:"2"']);
  });

  it('--gpus all: one engine per GPU NVML reports; refused without NVML or without GPUs', () => {
    expect(short(planEngines('all', undefined, twoGpus))).toEqual(['0:cuda:0:"0"', '1:cuda:1:"1"']);
    expect(() => planEngines('all', undefined, noNvml)).toThrow(/--gpus all needs NVML/);
    expect(() => planEngines('all', undefined, () => 0)).toThrow(/NVML reports no GPU/);
  });

  it('--engines N spreads N engines over the GPUs in turn', () => {
    expect(short(planEngines([0, 1], 3, noNvml))).toEqual(['0:cuda:0:"0"', '1:cuda:1:"1"', '2:cuda:0:"0"']);
    expect(short(planEngines([3], 2, noNvml))).toEqual(['0:cuda:3:"3"', '1:cuda:3:"3"']);
  });

  it('without GPUs (--gpus none, or --engines alone) engines run on the CPU with every GPU hidden', () => {
    expect(short(planEngines(undefined, 2, twoGpus))).toEqual(['0:cpu:""', '1:cpu:""']);
    expect(short(planEngines('none', undefined, twoGpus))).toEqual(['0:cpu:""']);
    expect(short(planEngines('none', 3, twoGpus))).toEqual(['0:cpu:""', '1:cpu:""', '2:cpu:""']);
  });
});
