/**
 * One completion on one sequence: tokenize, check the context budget, evaluate, stream text,
 * stop on EOS / stop strings / max tokens / cancel. Reports through the `emit` callback only, so it
 * knows nothing about ports or metrics.
 */
import type { ChatHistoryItem, LlamaContextSequence, Token } from 'node-llama-cpp';
import type { ErrorPayload, FinishReason, GenerateInput, SamplingParams, WorkerMessage } from '../src/shared/protocol.js';
import type { Engine } from './engine.js';
import { StopMatcher } from './stop-matcher.js';
import { TokenTextDecoder } from './token-text.js';

export class GenerationError extends Error {
  constructor(readonly payload: ErrorPayload) {
    super(payload.message);
  }
}

export interface GenerateOptions {
  input: GenerateInput;
  sampling: SamplingParams;
  emit: (msg: WorkerMessage) => void;
  /** True once the task was cancelled; checked after every decode step. */
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

export function tokenizeInput(engine: Engine, input: GenerateInput): Token[] {
  const { model } = engine;
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
  const { contextText } = engine.chatWrapper.generateContextState({ chatHistory: history });
  return contextText.tokenize(model.tokenizer);
}

function contextError(message: string, param: string | null): GenerationError {
  return new GenerationError({ status: 400, type: 'invalid_request_error', code: 'context_length_exceeded', message, param });
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

/** Reuses the longest common prefix already in the sequence's KV cache and erases the rest. */
async function prepareSequence(engine: Engine, seq: LlamaContextSequence, prompt: Token[]): Promise<Token[]> {
  const cached = seq.contextTokens;
  let common = 0;
  const limit = Math.min(cached.length, prompt.length - 1); // at least one token must be evaluated
  while (common < limit && cached[common] === prompt[common]) common++;
  const end = seq.nextTokenIndex;
  if (common < end) await engine.pause.during(() => seq.eraseContextTokenRanges([{ start: common, end }]));
  return prompt.slice(common);
}

export async function generate(engine: Engine, seq: LlamaContextSequence, prompt: Token[], opts: GenerateOptions): Promise<GenerateResult> {
  const { model } = engine;
  const { sampling, emit } = opts;
  const maxTokens = budget(prompt.length, engine.contextSize, sampling, opts.input.kind === 'chat' ? 'messages' : 'prompt');
  opts.onStarted?.(prompt.length);
  emit({ type: 'started', promptTokens: prompt.length });

  const decoder = new TokenTextDecoder(model);
  const stops = new StopMatcher(sampling.stop);
  const generated: Token[] = [];
  let completionTokens = 0;
  let finishReason: FinishReason = 'length';
  let pendingTokens = 0;

  const send = (text: string) => {
    if (text.length === 0) return;
    emit({ type: 'text', text, tokens: pendingTokens });
    pendingTokens = 0;
  };

  const toEvaluate = await prepareSequence(engine, seq, prompt);
  const penalize = sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;
  const iterator = seq.evaluate(toEvaluate, {
    temperature: sampling.temperature,
    topK: sampling.topK,
    topP: sampling.topP,
    seed: sampling.seed,
    yieldEogToken: true,
    repeatPenalty: penalize
      ? {
          punishTokens: () => generated,
          penalty: 1,
          presencePenalty: sampling.presencePenalty,
          frequencyPenalty: sampling.frequencyPenalty,
        }
      : undefined,
  });

  let stopped = false;
  for await (const token of iterator) {
    // Hold the next decode step while another sequence's KV cache is being edited.
    if (engine.pause.wait) await engine.pause.wait;
    if (opts.cancelled()) {
      finishReason = 'abort';
      stopped = true;
      break;
    }
    if (model.isEogToken(token) && !sampling.ignoreEos) {
      finishReason = 'stop';
      break;
    }
    generated.push(token);
    completionTokens++;
    pendingTokens++;
    opts.onToken?.(completionTokens);
    const piece = stops.push(decoder.push(token));
    send(piece.emit);
    if (piece.stopped) {
      finishReason = 'stop';
      stopped = true;
      break;
    }
    if (completionTokens >= maxTokens) break;
  }
  if (!stopped) {
    const tail = stops.push(decoder.flush());
    send(tail.emit);
    if (tail.stopped) finishReason = 'stop';
    else send(stops.flush());
  }
  return { finishReason, promptTokens: prompt.length, completionTokens };
}
