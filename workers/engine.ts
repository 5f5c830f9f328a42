/**
 * One worker's model resources: the llama backend, the model (weights are mmap'd and shared with the
 * other workers through the page cache), one context with S sequences and the chat template.
 * node-llama-cpp batches the sequences of one context together, so concurrent tasks share decode steps.
 */
import {
  getLlama,
  LlamaLogLevel,
  resolveChatWrapper,
  type ChatWrapper,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
} from 'node-llama-cpp';
import type { WorkerInit } from '../src/shared/protocol.js';
import { DecodePause } from './decode-pause.js';

export interface Engine {
  model: LlamaModel;
  context: LlamaContext;
  chatWrapper: ChatWrapper;
  sequences: SequencePool;
  contextSize: number;
  /** Pauses generation loops while a sequence's KV cache is edited (see DecodePause). */
  pause: DecodePause;
  /** The llama.cpp release the backend was built from, for qwen_build_info. */
  llamaCppRelease: string;
  /** Share of the context's KV cells holding tokens (0-1); cached prefixes count as used. */
  kvUsage(): number;
}

export async function loadEngine(init: WorkerInit): Promise<Engine> {
  // maxThreads and threads are always explicit: node-llama-cpp's own default (max(4, cores)) runs
  // ~100x slower on a 2-core machine.
  const llama = await getLlama({
    gpu: init.gpu === 'off' ? false : init.gpu,
    maxThreads: init.threads,
    build: 'never',
    logLevel: LlamaLogLevel.error,
  });
  const model = await llama.loadModel({ modelPath: init.modelPath, gpuLayers: init.gpuLayers });
  const context = await model.createContext({
    // contextSize is per sequence; "auto" would reserve up to 32k tokens for each.
    contextSize: init.contextSize,
    sequences: init.sequences,
    threads: init.threads,
    batchSize: init.batchSize,
  });
  // The model's own Jinja template, used as is. (Auto-detection renders the template against every
  // built-in wrapper to find an equivalent one: 2.1 s of start-up per worker on the tiny model.)
  const chatWrapper = resolveChatWrapper(model, { type: 'jinjaTemplate' });
  const seqs: LlamaContextSequence[] = [];
  for (let i = 0; i < init.sequences; i++) seqs.push(context.getSequence());
  return {
    model,
    context,
    chatWrapper,
    sequences: new SequencePool(seqs),
    contextSize: init.contextSize,
    pause: new DecodePause(),
    llamaCppRelease: llama.llamaCppRelease.release,
    kvUsage: () => seqs.reduce((used, s) => used + s.nextTokenIndex, 0) / (init.contextSize * seqs.length),
  };
}

/** Hands each task a free sequence; waits (FIFO) when all are busy. */
export class SequencePool {
  private readonly free: LlamaContextSequence[];
  private readonly waiting: ((s: LlamaContextSequence) => void)[] = [];
  readonly capacity: number;

  constructor(sequences: LlamaContextSequence[]) {
    this.free = [...sequences];
    this.capacity = sequences.length;
  }

  acquire(): Promise<LlamaContextSequence> {
    const s = this.free.pop();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(s: LlamaContextSequence): void {
    const next = this.waiting.shift();
    if (next) next(s);
    else this.free.push(s);
  }

  get inUse(): number {
    return this.capacity - this.free.length;
  }
}
