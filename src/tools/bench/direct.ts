/**
 * The direct baseline: the same workload through node-llama-cpp in this process, with the worker's own
 * loaded model and generation loop (same model file, threads, sequences, sampling) but no HTTP, no Piscina and no
 * MessagePorts. The difference to qwen-serve is what HTTP and the pool cost.
 */
import { loadModel, type LoadedModel } from '../../../workers/model.js';
import type { GpuMode } from '../../shared/protocol.js';
import { generate } from '../../../workers/generate.js';
import { TextTokenizer } from '../../tokenizer/text-tokenizer.js';
import type { RequestSample } from './stats.js';
import type { Workload } from './workload.js';
import { requestOf } from './workload.js';

export interface DirectOptions {
  modelPath: string;
  threads: number;
  sequences: number;
  contextSize: number;
  batchSize: number;
  gpu: GpuMode;
}

export class DirectBaseline {
  private readonly tokenizer: TextTokenizer;

  private constructor(private readonly loaded: LoadedModel) {
    this.tokenizer = new TextTokenizer(loaded.model);
  }

  static async load(o: DirectOptions): Promise<DirectBaseline> {
    const loaded = await loadModel({
      ...o,
      gpuLayers: 'auto',
      modelId: 'direct',
      channel: 'direct',
      timeBuckets: [],
      faults: false,
      grammarCacheSize: 0,
    });
    if (loaded.kind !== 'generate') throw new Error('the direct baseline needs a text-generation model');
    return new DirectBaseline(loaded);
  }

  async request(w: Workload): Promise<RequestSample> {
    const startMs = performance.now();
    let ttftMs = NaN;
    let last = NaN;
    const itlMs: number[] = [];
    try {
      const request = requestOf(w);
      const prompt = this.tokenizer.tokenize(request.prompt, false);
      const seq = await this.loaded.sequences.acquire();
      try {
        const result = await generate(this.loaded, seq, prompt, {
          promptParam: 'prompt',
          sampling: {
            temperature: w.temperature,
            topP: 1,
            topK: 0,
            presencePenalty: request.presence_penalty ?? 0,
            frequencyPenalty: request.frequency_penalty ?? 0,
            maxTokens: w.genTokens,
            maxTokensParam: 'max_tokens',
            stop: [],
            logitBias: [],
            ignoreEos: true,
            speculative: false,
          },
          cancelled: () => false,
          emit: (msg) => {
            if (msg.type !== 'text') return;
            const now = performance.now();
            if (Number.isNaN(ttftMs)) ttftMs = now - startMs;
            else itlMs.push(now - last);
            last = now;
          },
        });
        return { startMs, endMs: performance.now(), ttftMs, itlMs, tokens: result.completionTokens };
      } finally {
        this.loaded.sequences.release(seq);
      }
    } catch (err) {
      return { startMs, endMs: performance.now(), ttftMs, itlMs, tokens: 0, error: (err as Error).message };
    }
  }

  async dispose(): Promise<void> {
    await this.loaded.context.dispose();
    await this.loaded.model.dispose();
  }
}
