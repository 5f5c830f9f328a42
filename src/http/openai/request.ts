/**
 * OpenAI chat and completion requests mapped into the neutral GenerationRequest (core/generation.ts): the
 * prompts, the sampling fields, and the answer's shape with OpenAI's own field paths for errors.
 */
import { InvalidRequestError } from '../../errors.js';
import type { ChatMessage, GenerateInput } from '../../shared/protocol.js';
import type { GenerationRequest } from '../core/generation.js';
import type { SamplingRequest } from '../core/sampling.js';
import type { FormatDeclaration, ShapeRequest, ToolChoiceDeclaration } from '../core/shape.js';
import { ToolCallLedger } from '../core/tool-results.js';
import { callArguments, invalidValue, joinText } from '../core/validation.js';
import { inputsOf, MAX_CHOICES, type ChatBody, type CompletionBody } from './schemas.js';

/** OpenAI's default for /v1/completions; chat defaults to the rest of the context. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

/** @param maxJsonDepth --max-json-depth, for the tool calls' arguments (JSON strings) */
export function chatInput(body: ChatBody, maxJsonDepth: number): GenerateInput {
  const messages = body.messages.map((m, i): ChatMessage => {
    // "developer" is OpenAI's newer name for the system role.
    if (m.role === 'developer') return { role: 'system', content: joinText(m.content) };
    if (m.role === 'tool') return { role: 'tool', content: joinText(m.content), toolCallId: m.tool_call_id };
    if (m.role === 'assistant' && m.tool_calls?.length) {
      const toolCalls = m.tool_calls.map((c, j) => ({
        id: c.id,
        name: c.function.name,
        arguments: callArguments(c.function.arguments, `messages.${i}.tool_calls.${j}.function.arguments`, maxJsonDepth),
      }));
      return { role: 'assistant', content: joinText(m.content), toolCalls };
    }
    return { role: m.role, content: joinText(m.content) };
  });
  checkToolResults(messages);
  return { kind: 'chat', messages };
}

/** As OpenAI requires: every tool message answers an earlier call, and every call gets an answer. */
function checkToolResults(messages: readonly ChatMessage[]): void {
  const ledger = new ToolCallLedger({
    unknown: (id) => `no earlier assistant message has a tool call with id '${id}'`,
    unanswered: (id) => `the tool call '${id}' has no tool message with its result`,
  });
  messages.forEach((m, i) => {
    for (const call of m.toolCalls ?? []) ledger.call(call.id, `messages.${i}.tool_calls`);
    if (m.role === 'tool') ledger.result(m.toolCallId!, `messages.${i}.tool_call_id`);
  });
  ledger.close();
}

/** The prompts of a completion request (a string, several, token ids, or several token-id arrays). */
function completionInputs(body: CompletionBody): GenerateInput[] {
  const { prompt } = body;
  const suffix = body.suffix ?? undefined;
  if (body.echo && suffix !== undefined) throw new InvalidRequestError('echo: cannot be combined with suffix', 'echo', 'invalid_value');
  if (body.echo && body.logprobs != null) {
    throw new InvalidRequestError(
      'echo: log probabilities of the prompt are not supported; drop logprobs or echo',
      'echo',
      'invalid_value',
    );
  }
  const prompts = inputsOf(prompt, 'prompt', suffix);
  const n = body.n ?? 1;
  if (prompts.length * n > MAX_CHOICES) {
    throw new InvalidRequestError(
      `prompt: ${prompts.length} prompts × n=${n} is more than ${MAX_CHOICES} choices`,
      'prompt',
      'invalid_value',
    );
  }
  return prompts;
}

type SamplingFields = Pick<
  CompletionBody,
  | 'temperature'
  | 'top_p'
  | 'top_k'
  | 'seed'
  | 'stop'
  | 'presence_penalty'
  | 'frequency_penalty'
  | 'ignore_eos'
  | 'speculative'
  | 'logit_bias'
>;

/** The sampling fields the OpenAI APIs share (the Responses API sends a subset). */
function openaiSampling(body: SamplingFields, maxTokens: number | null | undefined, maxTokensParam: string): SamplingRequest {
  return {
    temperature: body.temperature,
    topP: body.top_p,
    topK: body.top_k,
    seed: body.seed,
    stop: body.stop,
    presencePenalty: body.presence_penalty,
    frequencyPenalty: body.frequency_penalty,
    ignoreEos: body.ignore_eos,
    speculative: body.speculative,
    logitBias: body.logit_bias,
    maxTokens: maxTokens ?? undefined,
    maxTokensParam,
  };
}

type ResponseFormat = ChatBody['response_format'];

function format(f: ResponseFormat): FormatDeclaration | undefined {
  if (f == null) return undefined;
  if (f.type !== 'json_schema') return { type: f.type, param: 'response_format' };
  const { schema, strict } = f.json_schema;
  return { type: 'json_schema', schema, strict, param: 'response_format', schemaParam: 'response_format.json_schema.schema' };
}

function toolChoice(choice: ChatBody['tool_choice']): ToolChoiceDeclaration | undefined {
  if (choice == null) return undefined;
  if (typeof choice === 'string') return { type: choice, as: choice, param: 'tool_choice' };
  return { type: 'function', name: choice.function.name, as: 'function', param: 'tool_choice', nameParam: 'tool_choice.function.name' };
}

function chatShape(body: ChatBody): ShapeRequest {
  if (body.top_logprobs != null && body.logprobs !== true) throw invalidValue('top_logprobs', 'requires logprobs to be true');
  return {
    tools: body.tools?.map(({ function: f }, i) => ({
      ...f,
      nameParam: `tools.${i}.function.name`,
      parametersParam: `tools.${i}.function.parameters`,
    })),
    toolsParam: 'tools',
    toolChoice: toolChoice(body.tool_choice),
    parallelToolCalls: body.parallel_tool_calls,
    format: format(body.response_format),
    logprobs: body.logprobs === true ? { top: body.top_logprobs ?? 0 } : undefined,
  };
}

/** @param maxJsonDepth --max-json-depth, for the tool calls' arguments (JSON strings) */
export function chatRequest(body: ChatBody, maxJsonDepth: number): GenerationRequest {
  const maxTokensParam = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  return {
    model: body.model,
    inputs: [chatInput(body, maxJsonDepth)],
    n: body.n ?? 1,
    sampling: openaiSampling(body, body.max_completion_tokens ?? body.max_tokens, maxTokensParam),
    shape: chatShape(body),
    promptParam: 'messages',
    logprobsParam: body.top_logprobs ? 'top_logprobs' : 'logprobs',
    stream: body.stream === true,
  };
}

export function completionRequest(body: CompletionBody): GenerationRequest {
  return {
    model: body.model,
    inputs: completionInputs(body),
    n: body.n ?? 1,
    sampling: openaiSampling(body, body.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS, 'max_tokens'),
    shape: {
      format: format(body.response_format),
      logprobs: body.logprobs != null ? { top: body.logprobs } : undefined,
    },
    promptParam: 'prompt',
    logprobsParam: 'logprobs',
    stream: body.stream === true,
    echo: body.echo === true,
  };
}
