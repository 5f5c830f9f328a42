/**
 * Loads --draft-model in a model worker, beside the main model: the same `llama` (one backend per process), its own
 * context with the main context's sequences and context size (the draft sequence of id i drafts for the main
 * sequence i) and a small batch, and one greedy sampler per sequence.
 *
 * What it costs: its weights (mmap'd, shared by the workers), and per worker its KV cache (sequences × context size ×
 * its per-token KV) and the compute buffer of its batch. The batch bounds how much of a prompt it catches up per
 * step, and the buffer grows with it (a batch × the vocabulary of logits at worst).
 */
import type { Llama, LlamaContext, LlamaModel } from 'node-llama-cpp';
import type { WorkerInit } from '../../src/shared/protocol.js';
import { nativeContext, samplerFactory, type NativeContext } from '../native.js';
import { DraftModel } from './draft-model.js';

/** Tokens of one draft decode: a prompt's catch-up comes in chunks of this many. */
const DRAFT_BATCH = 128;

export interface LoadedDraft {
  model: LlamaModel;
  context: LlamaContext;
  drafter: DraftModel;
}

/** Fails with a message naming --draft-model: the worker's load fails, and the model with it. */
export async function loadDraftModel(llama: Llama, init: WorkerInit, path: string, main: MainModel): Promise<LoadedDraft> {
  try {
    return await load(llama, init, path, main);
  } catch (err) {
    throw new Error(`--draft-model ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

interface MainModel {
  model: LlamaModel;
  native: NativeContext;
  vocabularySize: number;
}

async function load(llama: Llama, init: WorkerInit, path: string, main: MainModel): Promise<LoadedDraft> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: init.gpuLayers });
  const batchSize = Math.min(init.batchSize, DRAFT_BATCH);
  let context: LlamaContext | undefined;
  try {
    context = await model.createContext({ contextSize: init.contextSize, sequences: init.sequences, threads: init.threads, batchSize });
    const native = nativeContext(context);
    try {
      main.native.ensureDraftContextIsCompatibleForSpeculative(native);
    } catch (err) {
      throw new Error(`it cannot draft for this model (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
    const createSampler = samplerFactory(model);
    const samplers = Array.from({ length: init.sequences }, () => {
      const sampler = createSampler();
      sampler.applyConfig({ temperature: 0, minP: 0, topP: 1, seed: 0 });
      return sampler;
    });
    const drafter = new DraftModel(native, samplers, {
      batchSize,
      draftVocabulary: model.fileInfo.metadata.tokenizer.ggml.tokens.length,
      mainVocabulary: main.vocabularySize,
      relativeCost: model.size / main.model.size,
    });
    return { model, context, drafter };
  } catch (err) {
    await context?.dispose();
    await model.dispose();
    throw err;
  }
}
