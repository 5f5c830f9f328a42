/**
 * A request's prompt as tokens: plain text, token ids, fill-in-the-middle (completions `suffix`), or chat
 * messages rendered with the model's own template through node-llama-cpp's chat wrapper (tools included).
 * Used by the tokenizer workers (workers/prepare-worker.ts), with the vocabulary-only model: client text is
 * tokenized there, never on the main thread or in a model worker's decode loop.
 */
import type { ChatHistoryItem, ChatModelFunctions, ChatWrapper, GbnfJsonSchema, LlamaModel, Token } from 'node-llama-cpp';
import { InvalidRequestError } from '../errors.js';
import type { TextTokenizer } from '../tokenizer/text-tokenizer.js';
import type { ChatMessage, GenerateInput, OutputConstraints, ToolFunction } from './protocol.js';

export interface PromptModel {
  model: LlamaModel;
  chatWrapper: ChatWrapper;
  /** Tokens in the vocabulary (ids 0 to vocabularySize - 1). */
  vocabularySize: number;
  /** Splits special tokens in linear time (llama.cpp's own split is quadratic in their number). */
  tokenizer: TextTokenizer;
}

/** `param`: the request field holding the prompt, for errors. */
export function promptTokens(m: PromptModel, input: GenerateInput, constraints: OutputConstraints = {}, param = 'prompt'): Token[] {
  const { model, tokenizer } = m;
  if (input.kind === 'chat') {
    const history = chatHistory(input.messages);
    history.push({ type: 'model', response: [] });
    const { contextText } = m.chatWrapper.generateContextState({
      chatHistory: history,
      availableFunctions: constraints.tools && availableFunctions(constraints.tools.functions),
    });
    return contextText.tokenize(tokenizer.asTokenizer());
  }
  const prompt = input.kind === 'tokens' ? checkedTokens(input.tokens, m.vocabularySize, param) : tokenizer.tokenize(input.prompt, false);
  if (input.suffix !== undefined) return infill(model, prompt, tokenizer.tokenize(input.suffix, false));
  // An empty prompt starts from BOS, as the OpenAI API allows an empty prompt.
  if (prompt.length === 0 && model.tokens.bos != null) return [model.tokens.bos];
  return prompt;
}

/** Token ids a client sent, checked against the vocabulary. */
export function checkedTokens(tokens: readonly number[], vocabularySize: number, param: string): Token[] {
  const bad = tokens.find((t) => t >= vocabularySize);
  if (bad !== undefined) {
    throw new InvalidRequestError(
      `${param}: token id ${bad} is not in the model's vocabulary (ids 0 to ${vocabularySize - 1})`,
      param,
      'invalid_value',
    );
  }
  return tokens as Token[];
}

/** Fill in the middle with the model's FIM tokens (Qwen2.5: <|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>). */
function infill(model: LlamaModel, prefix: Token[], suffix: Token[]): Token[] {
  const { prefix: pre, suffix: suf, middle: mid } = model.tokens.infill;
  if (pre == null || suf == null || mid == null) {
    throw new InvalidRequestError(
      'suffix: this model has no fill-in-the-middle tokens, so it cannot complete between a prompt and a suffix',
      'suffix',
      'unsupported_value',
    );
  }
  return [pre, ...prefix, suf, ...suffix, mid];
}

/** The tools as node-llama-cpp's chat wrapper renders them into the template (the client's schemas as sent). */
function availableFunctions(functions: readonly ToolFunction[]): ChatModelFunctions {
  return Object.fromEntries(functions.map((f) => [f.name, { description: f.description, params: f.parameters as GbnfJsonSchema }]));
}

/**
 * OpenAI messages as node-llama-cpp's chat history: an assistant's tool calls become function calls of its
 * response, each with the content of the tool message that answered it (the main thread checked that
 * every call has one).
 */
function chatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const results = new Map(messages.filter((m) => m.role === 'tool').map((m) => [m.toolCallId, m.content]));
  const history: ChatHistoryItem[] = [];
  for (const m of messages) {
    if (m.role === 'system') history.push({ type: 'system', text: m.content });
    else if (m.role === 'user') history.push({ type: 'user', text: m.content });
    else if (m.role === 'assistant') {
      const calls = (m.toolCalls ?? []).map((c) => ({
        type: 'functionCall' as const,
        name: c.name,
        params: c.arguments,
        result: results.get(c.id) ?? '',
      }));
      history.push({ type: 'model', response: [...(m.content ? [m.content] : []), ...calls] });
    }
  }
  return history;
}
