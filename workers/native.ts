/**
 * The level of node-llama-cpp below LlamaContextSequence that the batch loop drives: the context's
 * native handle (one llama_batch, llama_decode, sampling from a batch row) and native samplers.
 *
 * They are internals of the pinned node-llama-cpp 3.21.1 (`LlamaContext._ctx`, `Llama._bindings`),
 * typed here after its own `bindings/AddonTypes.d.ts`, which the package does not export. Every method
 * is checked when a worker loads, so a version that changed them fails at start-up with a message that
 * says so, never in the middle of a request (test/batch-loop.test.ts, "native internals", checks the same on
 * the installed one).
 */
import type { LlamaContext, LlamaGrammarEvaluationState, LlamaModel, Token } from 'node-llama-cpp';
import type { TopLogprobsPath } from '../src/shared/protocol.js';

/** One context's batch and sampling calls (node-llama-cpp's AddonContext). */
export interface NativeContext {
  /** Allocates a fresh llama_batch for up to `size` tokens (at most the context's batch size). */
  initBatch(size: number): void;
  /**
   * Appends `tokens` of one sequence at positions `firstPos…`; `logitIndexes` (into `tokens`) are the
   * rows that get logits. Returns their row numbers in the batch, for sampleToken.
   */
  addToBatch(sequenceId: number, firstPos: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array;
  /** llama_decode of the current batch, on a libuv thread. */
  decodeBatch(): Promise<void>;
  /** Samples a token from one row of the last decode's logits, on a libuv thread; -1 when none. */
  sampleToken(batchRow: number, sampler: NativeSampler): Promise<Token | -1>;
  /**
   * The same, also returning the candidates the token was drawn from, most likely first, flattened as
   * [token, probability, token, probability, …] (with a grammar, the tokens it allows), and/or the sampled
   * token's probability alone (`confidence`: one pass over the candidates, no copy).
   */
  sampleToken(
    batchRow: number,
    sampler: NativeSampler,
    probabilities: boolean,
    confidence: boolean,
  ): Promise<[Token | -1, number[] | undefined, number | undefined]>;
  /**
   * The patched addon only (`topLogprobsPath` 'patched-top-k'): the same probabilities, normalized over every
   * candidate, but `probabilities` returns only the `topCandidates` most likely (a partial sort, no copy of the
   * vocabulary) and `confidence` costs one pass with no sort. The stock addon ignores the argument and returns
   * every candidate, sorted: the same first k, slowly.
   */
  sampleToken(
    batchRow: number,
    sampler: NativeSampler,
    probabilities: boolean,
    confidence: boolean,
    topCandidates: number,
  ): Promise<[Token | -1, number[] | undefined, number | undefined]>;
  /** llama_memory_seq_rm: drops the sequence's cells in [start, end) (-1 = to the end). */
  removeTokenCellsFromSequence(sequenceId: number, start: number, end: number): boolean;
  /** llama_state_seq_save_file: the sequence's KV cells (and `tokens`) to a file, on a libuv thread. */
  saveSequenceStateToFile(filePath: string, sequenceId: number, tokens: Uint32Array): Promise<number>;
  /** llama_state_seq_load_file: replaces the sequence's cells with a saved state; returns its tokens. */
  loadSequenceStateFromFile(filePath: string, sequenceId: number, maxContextSize: number): Promise<Uint32Array>;
  /**
   * Throws unless `draftContext`'s model can draft for this one: the same vocabulary type, BOS / EOS, sizes within
   * 128 tokens and the same text for every token both have (llama.cpp's speculative-decoding check). Synchronous.
   */
  ensureDraftContextIsCompatibleForSpeculative(draftContext: NativeContext): void;
}

/** What a native sampler accepts (a subset of AddonSampler.applyConfig). */
export interface SamplerConfig {
  temperature: number;
  minP: number;
  /** Absent: no top-k step (the addon reads 0 as top_k(vocabulary size), a full sort). */
  topK?: number;
  topP: number;
  seed: number;
  repeatPenalty?: number;
  repeatPenaltyMaxTokens?: number;
  repeatPenaltyTokens?: Uint32Array;
  repeatPenaltyPresencePenalty?: number;
  repeatPenaltyFrequencyPenalty?: number;
  tokenBiasKeys?: Uint32Array;
  tokenBiasValues?: Float32Array;
  /** The native state of a LlamaGrammarEvaluationState: sampling is restricted to what the grammar allows. */
  grammarEvaluationState?: NativeGrammarState;
}

/** LlamaGrammarEvaluationState's native object (advanced by the sampler with every token it samples). */
export type NativeGrammarState = { readonly __nativeGrammarState: never };

/** A native sampler chain (node-llama-cpp's AddonSampler); holds RNG state, so one per request. */
export interface NativeSampler {
  applyConfig(config: SamplerConfig): void;
  dispose(): void;
}

const CONTEXT_METHODS = [
  'initBatch',
  'addToBatch',
  'decodeBatch',
  'sampleToken',
  'removeTokenCellsFromSequence',
  'saveSequenceStateToFile',
  'loadSequenceStateFromFile',
  'ensureDraftContextIsCompatibleForSpeculative',
] as const;
const SAMPLER_METHODS = ['applyConfig', 'dispose'] as const;

export class NativeApiError extends Error {
  constructor(what: string) {
    super(`node-llama-cpp's internal API changed (${what}); qwen-serve drives it directly and needs node-llama-cpp 3.21.1`);
  }
}

function checkMethods(obj: unknown, methods: readonly string[], owner: string): void {
  for (const m of methods) {
    if (typeof (obj as Record<string, unknown> | undefined)?.[m] !== 'function') throw new NativeApiError(`${owner}.${m} is missing`);
  }
}

/** The native handle of a context, checked. */
export function nativeContext(context: LlamaContext): NativeContext {
  const ctx = (context as unknown as { _ctx?: unknown })._ctx;
  checkMethods(ctx, CONTEXT_METHODS, 'LlamaContext._ctx');
  return ctx as NativeContext;
}

/** The native state of a grammar evaluation state (its `_state`), checked. */
export function nativeGrammarState(state: LlamaGrammarEvaluationState): NativeGrammarState {
  const native = (state as unknown as { _state?: unknown })._state;
  if (native == null || typeof native !== 'object') throw new NativeApiError('LlamaGrammarEvaluationState._state is missing');
  return native as NativeGrammarState;
}

/**
 * Which addon node-llama-cpp loaded: the one qwen-serve's install step patched (scripts/addon-patch; its
 * exports carry `qwenServePatch: 1`, and sampleToken takes the number of candidates to return), or the stock
 * one (CUDA / Vulkan builds, or an install that could not compile), where top_logprobs sort the vocabulary.
 */
export function topLogprobsPath(model: LlamaModel): TopLogprobsPath {
  const bindings = (model as unknown as { _llama?: { _bindings?: { qwenServePatch?: unknown } } })._llama?._bindings;
  if (bindings == null) throw new NativeApiError('Llama._bindings is missing');
  const marker = bindings.qwenServePatch;
  if (marker === undefined) return 'stock-full-sort';
  if (marker === 1) return 'patched-top-k';
  throw new NativeApiError(
    `the addon's qwenServePatch is ${JSON.stringify(marker) ?? typeof marker}, this qwen-serve knows 1: run \`npm run patch-addon -- --force\``,
  );
}

/** A token's text as stored in the vocabulary (byte-level BPE symbols for Qwen), checked once. */
export function vocabularyText(model: LlamaModel): (token: Token) => string {
  const native = (model as unknown as { _model?: { getTokenString?: unknown } })._model;
  if (typeof native?.getTokenString !== 'function') throw new NativeApiError('LlamaModel._model.getTokenString is missing');
  const getTokenString = native.getTokenString.bind(native) as (token: number) => string | undefined;
  return (token) => getTokenString(token) ?? '';
}

type SamplerClass = new (model: unknown) => NativeSampler;

/** Returns a factory of native samplers for `model`, checked once. */
export function samplerFactory(model: LlamaModel): () => NativeSampler {
  const internals = model as unknown as { _model?: unknown; _llama?: { _bindings?: { AddonSampler?: unknown } } };
  const Sampler = internals._llama?._bindings?.AddonSampler;
  if (typeof Sampler !== 'function' || internals._model == null) throw new NativeApiError('Llama._bindings.AddonSampler is missing');
  const create = () => new (Sampler as SamplerClass)(internals._model);
  const probe = create();
  try {
    checkMethods(probe, SAMPLER_METHODS, 'AddonSampler');
  } finally {
    probe.dispose?.();
  }
  return create;
}
