/**
 * The OpenAI Responses API request (POST /v1/responses) mapped into the neutral GenerationRequest: `input`
 * and `instructions` become chat messages, function tools / tool_choice / text.format the answer's shape,
 * each with its Responses field path for errors. Fields that would change the answer and are not served
 * (stored conversations, built-in tools, images) are a 400 naming them.
 */
import { z } from 'zod';
import type { ChatMessage, GenerateInput } from '../../shared/protocol.js';
import type { GenerationRequest } from '../core/generation.js';
import type { FormatDeclaration, ShapeRequest, ToolChoiceDeclaration } from '../core/shape.js';
import { ToolCallLedger } from '../core/tool-results.js';
import {
  callArguments,
  joinText,
  MAX_TOP_LOGPROBS,
  maxTokensField,
  temperatureField,
  textOnly,
  topPField,
  upTo,
  type InputLimits,
} from '../core/validation.js';

const text = z.string();
const inputText = z.object({ type: z.enum(['input_text', 'output_text']), text });
const part = z.discriminatedUnion('type', [inputText, textOnly(['input_image', 'input_file', 'input_audio'], 'content parts')], {
  error: "only 'input_text' and 'output_text' content parts are supported",
});
const messageItem = z.object({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'assistant', 'system', 'developer'], { error: 'role must be one of user, assistant, system, developer' }),
  content: z.union([text, z.array(part)], { error: 'must be a string or an array of input_text parts' }),
});
const callItem = z.object({ type: z.literal('function_call'), call_id: z.string().min(1), name: z.string(), arguments: z.string() });
const outputItem = z.object({ type: z.literal('function_call_output'), call_id: z.string().min(1), output: z.string() });
const item = z.union([messageItem, callItem, outputItem], {
  error: "input items must be messages, 'function_call' or 'function_call_output' items",
});

const functionTool = z.object({
  type: z.literal('function', { error: "only 'function' tools are supported" }),
  name: z.string(),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

const unsupported = (why: string) => z.never({ error: why }).nullish();

export function responsesSchema(limits: InputLimits) {
  return z.object({
    model: z.string().nullish(),
    input: z.union([text, z.array(item).min(1, 'must not be empty')], { error: 'must be a string or an array of input items' }),
    instructions: z.string().nullish(),
    max_output_tokens: maxTokensField(limits.maxTokens).nullish(),
    temperature: temperatureField.nullish(),
    top_p: topPField.nullish(),
    top_logprobs: upTo(MAX_TOP_LOGPROBS).nullish(),
    stream: z.boolean().nullish(),
    tools: z.array(functionTool).nullish(),
    tool_choice: z
      .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string() })], {
        error: "must be 'none', 'auto', 'required' or {type: 'function', name}",
      })
      .nullish(),
    parallel_tool_calls: z.boolean().nullish(),
    text: z
      .object({
        format: z
          .discriminatedUnion(
            'type',
            [
              z.object({ type: z.literal('text') }),
              z.object({ type: z.literal('json_object') }),
              z.object({
                type: z.literal('json_schema'),
                name: z.string(),
                schema: z.record(z.string(), z.unknown()).nullish(),
                strict: z.boolean().nullish(),
              }),
            ],
            { error: "type must be one of 'text', 'json_object', 'json_schema'" },
          )
          .nullish(),
      })
      .nullish(),
    previous_response_id: unsupported(
      'previous_response_id is not supported: responses are not stored; send the whole conversation as input',
    ),
    conversation: unsupported('conversation is not supported: responses are not stored; send the whole conversation as input'),
    background: z.literal(false, { error: 'background responses are not supported' }).nullish(),
  });
}

export type ResponsesBody = z.infer<ReturnType<typeof responsesSchema>>;

function responsesInput(body: ResponsesBody, maxJsonDepth: number): GenerateInput {
  const messages: ChatMessage[] = [];
  if (body.instructions) messages.push({ role: 'system', content: body.instructions });
  const items = typeof body.input === 'string' ? [{ role: 'user' as const, content: body.input }] : body.input;
  const ledger = new ToolCallLedger({
    unknown: (id) => `no earlier function_call has call_id '${id}'`,
    unanswered: (id) => `the function_call '${id}' has no function_call_output`,
  });
  items.forEach((it, i) => {
    if ('role' in it) {
      messages.push({ role: it.role === 'developer' ? 'system' : it.role, content: joinText(it.content) });
    } else if (it.type === 'function_call') {
      // Calls join the assistant turn they follow (or open one).
      let last = messages.at(-1);
      if (last?.role !== 'assistant') messages.push((last = { role: 'assistant', content: '' }));
      (last.toolCalls ??= []).push({
        id: it.call_id,
        name: it.name,
        arguments: callArguments(it.arguments, `input.${i}.arguments`, maxJsonDepth),
      });
      ledger.call(it.call_id, `input.${i}`);
    } else {
      ledger.result(it.call_id, `input.${i}.call_id`);
      messages.push({ role: 'tool', content: it.output, toolCallId: it.call_id });
    }
  });
  ledger.close();
  return { kind: 'chat', messages };
}

function format(f: NonNullable<ResponsesBody['text']>['format']): FormatDeclaration | undefined {
  if (f == null) return undefined;
  if (f.type !== 'json_schema') return { type: f.type, param: 'text.format' };
  return { type: 'json_schema', schema: f.schema, strict: f.strict, param: 'text.format', schemaParam: 'text.format.schema' };
}

function toolChoice(choice: ResponsesBody['tool_choice']): ToolChoiceDeclaration | undefined {
  if (choice == null) return undefined;
  if (typeof choice === 'string') return { type: choice, as: choice, param: 'tool_choice' };
  return { type: 'function', name: choice.name, as: 'function', param: 'tool_choice', nameParam: 'tool_choice.name' };
}

function shape(body: ResponsesBody): ShapeRequest {
  return {
    tools: body.tools?.map((t, i) => ({ ...t, nameParam: `tools.${i}.name`, parametersParam: `tools.${i}.parameters` })),
    toolsParam: 'tools',
    toolChoice: toolChoice(body.tool_choice),
    parallelToolCalls: body.parallel_tool_calls,
    format: format(body.text?.format),
    logprobs: body.top_logprobs != null ? { top: body.top_logprobs } : undefined,
  };
}

/** @param maxJsonDepth --max-json-depth, for function_call arguments (JSON strings) */
export function responsesRequest(body: ResponsesBody, maxJsonDepth: number): GenerationRequest {
  return {
    model: body.model,
    inputs: [responsesInput(body, maxJsonDepth)],
    sampling: {
      temperature: body.temperature,
      topP: body.top_p,
      maxTokens: body.max_output_tokens ?? undefined,
      maxTokensParam: 'max_output_tokens',
    },
    shape: shape(body),
    promptParam: 'input',
    logprobsParam: 'top_logprobs',
    stream: body.stream === true,
  };
}
