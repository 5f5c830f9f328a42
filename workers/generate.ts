/**
 * One completion on one sequence: evaluate the (already tokenized) prompt, stream text, stop on EOS /
 * stop strings / max tokens / cancel. Reports through the `emit` callback only, so it knows nothing about
 * ports or metrics.
 */
import type { Token } from 'node-llama-cpp';
import { ContextLengthExceededError } from '../src/errors.js';
import { checkedTokens } from '../src/shared/prompt.js';
import { nowMs, type FinishReason, type SamplingParams, type Shaping, type WorkerMessage } from '../src/shared/protocol.js';
import { AnswerWriter } from './answer-writer.js';
import type { Sampled, SequenceState } from './batch-loop.js';
import { LogprobReader } from './logprobs.js';
import type { LoadedModel } from './model.js';
import type { NativeGrammarState, SamplerConfig } from './native.js';
import { compileShaping } from './structured/constraints.js';
import { TokenTextDecoder } from './token-text.js';

/** Repeat penalties look back this many tokens at least (node-llama-cpp's default window). */
const DEFAULT_PUNISH_WINDOW = 64;

export interface GenerateOptions {
  /** The request field that holds the prompt, for errors. */
  promptParam: string;
  sampling: SamplingParams & { maxTokens: number };
  shaping?: Shaping;
  logprobs?: { top: number };
  emit: (msg: WorkerMessage) => void;
  /** True once the task was cancelled; checked before every decode step and with every token. */
  cancelled: () => boolean;
  /** Plain events for whoever measures (metrics, traces) or tests (fault injection); no metrics code here. */
  onStarted?: (promptTokens: number) => void;
  /** The request's grammars were compiled, from `fromMs` (epoch ms) until now. */
  onGrammar?: (fromMs: number) => void;
  onToken?: (generated: number) => void;
}

export interface GenerateResult {
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** The stop string that ended the answer (finish reason stop), if one did. */
  stopSequence?: string;
}

/**
 * The front checked that the prompt and max_tokens fit the context (the client gets a 400 before its request
 * is queued); this is the worker's own guard against a task that does not, never a client's error.
 */
function checkFits(promptTokens: number, contextSize: number, sampling: { maxTokens: number }, promptParam: string): void {
  if (promptTokens < contextSize && promptTokens + sampling.maxTokens <= contextSize) return;
  throw new ContextLengthExceededError(
    `This model's maximum context length is ${contextSize} tokens (--context-size); the prompt has ${promptTokens} tokens and ${sampling.maxTokens} were asked for.`,
    promptParam,
  );
}

/** Whether the request's repeat penalties are on (their window then moves with every token). */
const penalizes = (sampling: SamplingParams) => sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;

/** The native sampler settings for one request (as node-llama-cpp's own evaluate() would resolve them). */
/** The request's logit_bias, plus a ban (-Infinity) on `banned` tokens. */
function tokenBias(logitBias: readonly [number, number][], banned: Uint32Array): [number, number][] {
  const bans = new Set(banned);
  return [...logitBias.filter(([token]) => !bans.has(token)), ...Array.from(banned, (t): [number, number] => [t, -Infinity])];
}

/**
 * `grammar`: its native state, and the tokens to rule out while it is on (bytes that are never UTF-8
 * text, which llama.cpp's grammars would let through in JSON strings).
 */
function samplerConfig(
  sampling: SamplingParams,
  generated: readonly Token[],
  grammar: { state: NativeGrammarState; banned: Uint32Array } | undefined,
): SamplerConfig {
  const bias = grammar ? tokenBias(sampling.logitBias, grammar.banned) : sampling.logitBias;
  return {
    temperature: sampling.temperature,
    minP: 0,
    // top_k 0 (off) leaves the key out: the addon would otherwise add top_k(vocabulary size), a sort of all 151,936
    // candidates before every sampled token (~1.3 ms on this CPU). The distribution is the same; which token a given
    // seed draws is not (the draw walks the candidates in another order).
    ...(sampling.topK > 0 && { topK: sampling.topK }),
    topP: sampling.topP,
    // Without a seed every request draws a new one, as OpenAI does.
    seed: sampling.seed ?? Math.floor(Math.random() * 2 ** 32),
    ...(penalizes(sampling) && {
      repeatPenalty: 1,
      repeatPenaltyMaxTokens: Math.max(DEFAULT_PUNISH_WINDOW, generated.length),
      repeatPenaltyTokens: Uint32Array.from(generated),
      repeatPenaltyPresencePenalty: sampling.presencePenalty,
      repeatPenaltyFrequencyPenalty: sampling.frequencyPenalty,
    }),
    ...(bias.length > 0 && {
      tokenBiasKeys: Uint32Array.from(bias, ([token]) => token),
      tokenBiasValues: Float32Array.from(bias, ([, b]) => b),
    }),
    // The key must be absent without a grammar: the addon unwraps whatever value it holds.
    ...(grammar && { grammarEvaluationState: grammar.state }),
  };
}

export async function generate(loaded: LoadedModel, seq: SequenceState, prompt: Token[], opts: GenerateOptions): Promise<GenerateResult> {
  const { model } = loaded;
  const { sampling, emit } = opts;
  checkFits(prompt.length, loaded.contextSize, sampling, opts.promptParam);
  const maxTokens = sampling.maxTokens;
  // logit_bias keys must be tokens of this model's vocabulary (only the worker knows its size).
  checkedTokens(
    sampling.logitBias.map(([token]) => token),
    loaded.vocabularySize,
    'logit_bias',
  );
  const compiling = nowMs();
  const shaping = await compileShaping(loaded.grammars, loaded.toolSyntax, opts.shaping);
  if (opts.shaping) opts.onGrammar?.(compiling);
  opts.onStarted?.(prompt.length);
  emit({ type: 'started', promptTokens: prompt.length });

  const decoder = new TokenTextDecoder(model);
  const logprobs = opts.logprobs && new LogprobReader(model, opts.logprobs.top);
  const writer = new AnswerWriter(emit, shaping.json ? [] : sampling.stop, shaping.parser, logprobs !== undefined);
  const generated: Token[] = [];
  let grammar = shaping.grammar;
  let finishReason: FinishReason = 'length';
  let stopped = false;

  let ended = false;
  /** One sampled token, between two decode steps; returns whether to go on. */
  const onToken = (token: Token, sampled: Sampled): boolean => {
    const more = accept(token, sampled);
    ended = !more;
    return more;
  };
  const accept = (token: Token, sampled: Sampled): boolean => {
    if (opts.cancelled()) {
      finishReason = 'abort';
      stopped = true;
      return false;
    }
    // A grammar allows end-of-generation only once its value is complete, and nothing after it.
    if (model.isEogToken(token) && (!sampling.ignoreEos || grammar !== undefined)) {
      finishReason = 'stop';
      return false;
    }
    generated.push(token);
    writer.token(logprobs?.entry(token, sampled));
    opts.onToken?.(generated.length);
    if (writer.push(decoder.push(token))) {
      finishReason = 'stop';
      stopped = true;
      return false;
    }
    if (generated.length >= maxTokens) return false;
    const parser = shaping.parser;
    // A free answer just began a tool call: the rest of it follows the tools' grammar.
    const engaged = parser?.engagedWith !== undefined && grammar === undefined;
    if (engaged && parser.engagedWith === loaded.toolSyntax?.trigger) grammar = shaping.afterTrigger;
    // Under a grammar the UTF-8 guard changes after a lead byte with a restricted continuation, and back.
    const after = grammar && guard().after(token);
    const guardChanged = after !== bannedAfter;
    bannedAfter = after;
    if (penalize || engaged || guardChanged) sampler.applyConfig(config());
    return true;
  };

  const penalize = penalizes(sampling);
  const guard = () => loaded.utf8Guard;
  /** Tokens the last one's lead byte cannot be followed by (under a grammar; see Utf8Guard). */
  let bannedAfter: Uint32Array | undefined;
  /** The sampler settings now; under a grammar, tokens never in UTF-8 and bannedAfter are ruled out. */
  const config = () =>
    samplerConfig(
      sampling,
      generated,
      grammar && { state: grammar, banned: bannedAfter ? Uint32Array.from([...guard().never, ...bannedAfter]) : guard().never },
    );
  let cachedTokens: number;
  const sampler = loaded.createSampler();
  try {
    sampler.applyConfig(config());
    cachedTokens = (
      await loaded.loop.run({
        sequence: seq,
        prompt,
        sampler,
        onToken,
        cancelled: opts.cancelled,
        probabilities: logprobs?.needs,
        // Drafts never go past max_tokens: the token about to be handed over is one of them.
        draftRoom: sampling.speculative ? () => maxTokens - generated.length - 1 : undefined,
      })
    ).reusedTokens;
  } finally {
    sampler.dispose();
  }
  // The loop ends a request without asking onToken only when it was cancelled.
  if (!ended) {
    finishReason = 'abort';
    stopped = true;
  }
  if (!stopped) {
    if (writer.push(decoder.flush()) || writer.flush()) finishReason = 'stop';
  }
  if (finishReason === 'stop' && writer.toolCalls > 0) finishReason = 'tool_calls';
  return { finishReason, promptTokens: prompt.length, completionTokens: generated.length, cachedTokens, stopSequence: writer.stopSequence };
}
