/**
 * One completion on one sequence: tokenize, check the context budget, evaluate, stream text,
 * stop on EOS / stop strings / max tokens / cancel. Reports through the `emit` callback only, so it
 * knows nothing about ports or metrics.
 */
import type { ChatHistoryItem, Token } from 'node-llama-cpp';
import { ContextLengthExceededError } from '../src/errors.js';
import type { ErrorPayload, FinishReason, GenerateInput, SamplingParams, WorkerMessage } from '../src/shared/protocol.js';
import type { SequenceState } from './batch-loop.js';
import type { LoadedModel } from './model.js';
import type { SamplerConfig } from './native.js';
import { StopMatcher } from './stop-matcher.js';
import { TokenTextDecoder } from './token-text.js';

/** Repeat penalties look back this many tokens at least (node-llama-cpp's default window). */
const DEFAULT_PUNISH_WINDOW = 64;

export class GenerationError extends Error {
  constructor(readonly payload: ErrorPayload) {
    super(payload.message);
  }
}

export interface GenerateOptions {
  input: GenerateInput;
  sampling: SamplingParams;
  emit: (msg: WorkerMessage) => void;
  /** True once the task was cancelled; checked before every decode step and with every token. */
  cancelled: () => boolean;
  /** Plain events for whoever measures (metrics) or tests (fault injection); no metrics code here. */
  onStarted?: (promptTokens: number) => void;
  onToken?: (generated: number) => void;
}

export interface GenerateResult {
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
}

export function tokenizeInput(loaded: LoadedModel, input: GenerateInput): Token[] {
  const { model } = loaded;
  if (input.kind === 'text') {
    const tokens = model.tokenize(input.prompt, false);
    // An empty prompt starts from BOS, as the OpenAI API allows an empty prompt.
    if (tokens.length === 0 && model.tokens.bos != null) return [model.tokens.bos];
    return tokens;
  }
  const history: ChatHistoryItem[] = input.messages.map((m): ChatHistoryItem => {
    if (m.role === 'system') return { type: 'system', text: m.content };
    if (m.role === 'user') return { type: 'user', text: m.content };
    return { type: 'model', response: [m.content] };
  });
  history.push({ type: 'model', response: [] });
  const { contextText } = loaded.chatWrapper.generateContextState({ chatHistory: history });
  return contextText.tokenize(model.tokenizer);
}

function contextError(message: string, param: string | null): GenerationError {
  return new GenerationError(new ContextLengthExceededError(message, param).toPayload());
}

/** Decides how many tokens may be generated; rejects prompts that do not fit (never truncates). */
export function budget(promptTokens: number, contextSize: number, sampling: SamplingParams, promptParam: string): number {
  const param = sampling.maxTokensParam;
  if (promptTokens >= contextSize) {
    throw contextError(
      `This model's maximum context length is ${contextSize} tokens (--context-size); the prompt has ${promptTokens} tokens. Shorten the prompt.`,
      promptParam,
    );
  }
  const room = contextSize - promptTokens;
  if (sampling.maxTokens === undefined) return room;
  if (sampling.maxTokens > room) {
    throw contextError(
      `This model's maximum context length is ${contextSize} tokens (--context-size). However, you requested ${promptTokens + sampling.maxTokens} tokens (${promptTokens} in the prompt, ${sampling.maxTokens} for ${param}). Lower ${param} to at most ${room} or shorten the prompt.`,
      param,
    );
  }
  return sampling.maxTokens;
}

/** The native sampler settings for one request (as node-llama-cpp's own evaluate() would resolve them). */
/** Whether the request's repeat penalties are on (their window then moves with every token). */
const penalizes = (sampling: SamplingParams) => sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;

function samplerConfig(sampling: SamplingParams, generated: readonly Token[]): SamplerConfig {
  return {
    temperature: sampling.temperature,
    minP: 0,
    topK: sampling.topK,
    topP: sampling.topP,
    // Without a seed every request draws a new one, as OpenAI does.
    seed: sampling.seed ?? Math.floor(Date.now() / 1000),
    ...(penalizes(sampling) && {
      repeatPenalty: 1,
      repeatPenaltyMaxTokens: Math.max(DEFAULT_PUNISH_WINDOW, generated.length),
      repeatPenaltyTokens: Uint32Array.from(generated),
      repeatPenaltyPresencePenalty: sampling.presencePenalty,
      repeatPenaltyFrequencyPenalty: sampling.frequencyPenalty,
    }),
  };
}

export async function generate(loaded: LoadedModel, seq: SequenceState, prompt: Token[], opts: GenerateOptions): Promise<GenerateResult> {
  const { model } = loaded;
  const { sampling, emit } = opts;
  const maxTokens = budget(prompt.length, loaded.contextSize, sampling, opts.input.kind === 'chat' ? 'messages' : 'prompt');
  opts.onStarted?.(prompt.length);
  emit({ type: 'started', promptTokens: prompt.length });

  const decoder = new TokenTextDecoder(model);
  const stops = new StopMatcher(sampling.stop);
  const generated: Token[] = [];
  let finishReason: FinishReason = 'length';
  let pendingTokens = 0;
  let stopped = false;

  const send = (text: string) => {
    if (text.length === 0) return;
    emit({ type: 'text', text, tokens: pendingTokens });
    pendingTokens = 0;
  };

  let ended = false;
  /** One sampled token, between two decode steps; returns whether to go on. */
  const onToken = (token: Token): boolean => {
    const more = accept(token);
    ended = !more;
    return more;
  };
  const accept = (token: Token): boolean => {
    if (opts.cancelled()) {
      finishReason = 'abort';
      stopped = true;
      return false;
    }
    if (model.isEogToken(token) && !sampling.ignoreEos) {
      finishReason = 'stop';
      return false;
    }
    generated.push(token);
    pendingTokens++;
    opts.onToken?.(generated.length);
    const piece = stops.push(decoder.push(token));
    send(piece.emit);
    if (piece.stopped) {
      finishReason = 'stop';
      stopped = true;
      return false;
    }
    if (generated.length >= maxTokens) return false;
    if (penalize) sampler.applyConfig(samplerConfig(sampling, generated));
    return true;
  };

  const penalize = penalizes(sampling);
  const sampler = loaded.createSampler();
  try {
    sampler.applyConfig(samplerConfig(sampling, generated));
    await loaded.loop.run({ sequence: seq, prompt, sampler, onToken, cancelled: opts.cancelled });
  } finally {
    sampler.dispose();
  }
  // The loop ends a request without asking onToken only when it was cancelled.
  if (!ended) {
    finishReason = 'abort';
    stopped = true;
  }
  if (!stopped) {
    const tail = stops.push(decoder.flush());
    send(tail.emit);
    if (tail.stopped) finishReason = 'stop';
    else send(stops.flush());
  }
  return { finishReason, promptTokens: prompt.length, completionTokens: generated.length };
}
