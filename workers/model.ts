/**
 * One worker's model resources: the llama backend, the model (weights are mmap'd and shared with the
 * other workers through the page cache), one context with S sequences, the chat template, and the
 * batch loop that decodes all of the context's sequences together (batch-loop.ts).
 */
import { getLlama, LlamaLogLevel, resolveChatWrapper, type ChatWrapper, type LlamaContext, type LlamaModel } from 'node-llama-cpp';
import { isEmbeddingModel, type LoadedEmbedder } from './embed.js';
import { llamaLogger } from './llama-log.js';
import { GrammarCache } from './structured/constraints.js';
import { Utf8Guard } from './token-bytes.js';
import type { TopLogprobsPath, WorkerInit } from '../src/shared/protocol.js';
import { BatchLoop, type LoopFault, type StepStats } from './batch-loop.js';
import { nativeContext, samplerFactory, topLogprobsPath, type NativeSampler } from './native.js';
import type { SequenceState } from './prefix-share.js';
import { toolCallSyntax, type ToolCallSyntax } from './structured/tool-syntax.js';
import { loadDraftModel, type LoadedDraft } from './speculation/load-draft.js';

/**
 * N-gram orders of speculative lookup, longest first: 4 tokens find a quoted passage again, 2 still catch a short
 * repetition; a single token is too common to say what follows it.
 */
const NGRAM_MIN = 2;
const NGRAM_MAX = 4;

export interface LoadedModel {
  kind: 'generate';
  model: LlamaModel;
  context: LlamaContext;
  chatWrapper: ChatWrapper;
  /** How the chat template writes tool calls; undefined when it has no syntax that can be enforced. */
  toolSyntax: ToolCallSyntax | undefined;
  sequences: SequencePool;
  loop: BatchLoop;
  /** --speculative draft: the draft model, its context and the drafter the loop asks. */
  draft?: LoadedDraft;
  /** A new native sampler (one per request: it holds the request's RNG state). */
  createSampler(): NativeSampler;
  /** Whether top_logprobs sample only the top k (the addon patched at install) or sort the vocabulary. */
  topLogprobs: TopLogprobsPath;
  contextSize: number;
  /** Tokens in the model's vocabulary (ids 0 to vocabularySize - 1). */
  vocabularySize: number;
  /** The llama.cpp release the backend was built from, for qwen_build_info. */
  llamaCppRelease: string;
  /**
   * Which tokens would break UTF-8, ruled out under grammars. Built at load (a pass over the vocabulary,
   * 270 ms for 152k tokens): built on the first grammar request, it stopped the decode loop that long.
   */
  utf8Guard: Utf8Guard;
  /** Compiled grammars by text (agents send the same tools every turn). */
  grammars: GrammarCache;
  /** Share of the context's KV cells holding tokens (0-1); cached prefixes count as used. */
  kvUsage(): number;
}

/**
 * A prompt prefix held by another sequence is copied when it is at least this many tokens longer than
 * the request's own cached prefix: the copy costs a few milliseconds, evaluating 16 tokens costs
 * ~180 ms on one CPU thread (docs/performance.md).
 */
const MIN_SHARED_PREFIX = 16;

export interface ModelHooks {
  /** Called after every decode step (metrics). */
  onStep?: (stats: StepStats) => void;
  /** Called when a failure in the batch loop failed requests (metrics). */
  onFault?: (fault: LoopFault) => void;
}

export async function loadModel(init: WorkerInit, hooks: ModelHooks = {}): Promise<LoadedModel | LoadedEmbedder> {
  // maxThreads and threads are always explicit: node-llama-cpp's own default (max(4, cores)) runs
  // ~100x slower on a 2-core machine.
  const llama = await getLlama({
    gpu: init.gpu === 'off' ? false : init.gpu,
    maxThreads: init.threads,
    build: 'never',
    logLevel: LlamaLogLevel.error,
    logger: llamaLogger(),
  });
  const model = await llama.loadModel({ modelPath: init.modelPath, gpuLayers: init.gpuLayers });
  const vocabularySize = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  if (isEmbeddingModel(model)) {
    const embeddings = await model.createEmbeddingContext({
      contextSize: init.contextSize,
      threads: init.threads,
      batchSize: init.batchSize,
    });
    return {
      kind: 'embed',
      model,
      embeddings,
      vocabularySize,
      contextSize: init.contextSize,
      llamaCppRelease: llama.llamaCppRelease.release,
    };
  }
  const context = await model.createContext({
    // contextSize is per sequence; "auto" would reserve up to 32k tokens for each.
    contextSize: init.contextSize,
    sequences: init.sequences,
    threads: init.threads,
    batchSize: init.batchSize,
  });
  const native = nativeContext(context);
  const draftPath = init.speculation?.draftModelPath;
  const draft = draftPath === undefined ? undefined : await loadDraftModel(llama, init, draftPath, { model, native, vocabularySize });
  const createSampler = samplerFactory(model);
  const topLogprobs = topLogprobsPath(model);
  // The model's own Jinja template, used as is. (Auto-detection renders the template against every
  // built-in wrapper to find an equivalent one: 2.1 s of start-up per worker on the tiny model.)
  const chatWrapper = resolveChatWrapper(model, { type: 'jinjaTemplate' });
  // The batch loop drives sequence ids 0..S-1 of the context directly; node-llama-cpp's
  // LlamaContextSequence objects are not used (their own decode loop would compete with ours).
  const seqs: SequenceState[] = Array.from({ length: init.sequences }, (_, id) => ({ id, tokens: [] }));
  return {
    kind: 'generate',
    model,
    context,
    chatWrapper,
    toolSyntax: toolCallSyntax(chatWrapper),
    sequences: new SequencePool(seqs),
    draft,
    loop: new BatchLoop(native, {
      batchSize: init.batchSize,
      contextSize: init.contextSize,
      sequences: seqs,
      minSharedPrefix: MIN_SHARED_PREFIX,
      onStep: hooks.onStep,
      onFault: hooks.onFault,
      topCandidates: topLogprobs === 'patched-top-k',
      speculation: init.speculation && {
        draftMin: init.speculation.draftMin,
        draftMax: init.speculation.draftMax,
        policy: init.speculation.policy,
        ngramMin: NGRAM_MIN,
        ngramMax: NGRAM_MAX,
        draftModel: draft?.drafter,
      },
    }),
    createSampler,
    topLogprobs,
    contextSize: init.contextSize,
    vocabularySize,
    utf8Guard: new Utf8Guard(model, vocabularySize),
    grammars: new GrammarCache(model, init.grammarCacheSize),
    llamaCppRelease: llama.llamaCppRelease.release,
    kvUsage: () => seqs.reduce((used, s) => used + s.tokens.length, 0) / (init.contextSize * seqs.length),
  };
}
/**
 * Hands each task a free sequence, the lowest id first; waits (FIFO) when all are busy.
 *
 * Lowest first matters for speed: llama.cpp decodes the sequences of a batch in one pass only when their
 * ids form one run of consecutive ids (with one KV stream per sequence it splits a batch at every gap,
 * and each part costs a full pass over the weights). Packing busy sequences at the low ids keeps the run
 * unbroken, and at low concurrency it also returns the sequence whose cached prefix was used last.
 */
class SequencePool {
  private readonly free: SequenceState[];
  private readonly waiting: ((s: SequenceState) => void)[] = [];

  /** @param sequences every sequence of the worker's context (--sequences of them), all free at first */
  constructor(sequences: SequenceState[]) {
    this.free = [...sequences];
  }

  acquire(): Promise<SequenceState> {
    if (this.free.length > 0) {
      const lowest = this.free.reduce((a, b) => (b.id < a.id ? b : a));
      this.free.splice(this.free.indexOf(lowest), 1);
      return Promise.resolve(lowest);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(s: SequenceState): void {
    const next = this.waiting.shift();
    if (next) next(s);
    else this.free.push(s);
  }
}
