/**
 * The OpenAI Responses API request (POST /v1/responses) as what the chat path already serves: `input` and
 * `instructions` become chat messages, function tools / tool_choice / text.format become the chat
 * constraints. Fields that would change the answer and are not served (stored conversations, built-in
 * tools, images) are a 400 naming them.
 */
import { z } from 'zod';
import type { ChatMessage, GenerateInput, OutputConstraints } from '../../shared/protocol.js';
import { chatConstraints, withParamNames } from '../constraints.js';
import type { SchemaLimits } from '../../structured/json-schema.js';
import { callArguments, createSchemas, textOnly, type ChatBody, type InputLimits } from '../schemas.js';
import { ToolCallLedger } from '../tool-results.js';

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
  // Sampling fields as the chat endpoint validates them.
  const chat = createSchemas(limits).chat.shape;
  return z.object({
    model: chat.model,
    input: z.union([text, z.array(item).min(1, 'must not be empty')], { error: 'must be a string or an array of input items' }),
    instructions: z.string().nullish(),
    max_output_tokens: chat.max_tokens,
    temperature: chat.temperature,
    top_p: chat.top_p,
    top_logprobs: chat.top_logprobs,
    stream: chat.stream,
    tools: z.array(functionTool).nullish(),
    tool_choice: z
      .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string() })], {
        error: "must be 'none', 'auto', 'required' or {type: 'function', name}",
      })
      .nullish(),
    parallel_tool_calls: chat.parallel_tool_calls,
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

const flatten = (c: string | { text: string }[]) => (typeof c === 'string' ? c : c.map((p) => p.text).join(''));

/** @param maxJsonDepth --max-json-depth, for function_call arguments (JSON strings) */
export function responsesInput(body: ResponsesBody, maxJsonDepth: number): GenerateInput {
  const messages: ChatMessage[] = [];
  if (body.instructions) messages.push({ role: 'system', content: body.instructions });
  const items = typeof body.input === 'string' ? [{ role: 'user' as const, content: body.input }] : body.input;
  const ledger = new ToolCallLedger({
    unknown: (id) => `no earlier function_call has call_id '${id}'`,
    unanswered: (id) => `the function_call '${id}' has no function_call_output`,
  });
  items.forEach((it, i) => {
    if ('role' in it) {
      messages.push({ role: it.role === 'developer' ? 'system' : it.role, content: flatten(it.content) });
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

/** The chat constraints for this request, with errors naming the Responses API's own fields. */
export function responsesConstraints(body: ResponsesBody, limits: SchemaLimits): OutputConstraints {
  const format = body.text?.format;
  const chatLike = {
    tools: body.tools?.map((t) => ({
      type: 'function' as const,
      function: { name: t.name, description: t.description, parameters: t.parameters, strict: t.strict },
    })),
    tool_choice:
      typeof body.tool_choice === 'object' && body.tool_choice
        ? { type: 'function' as const, function: { name: body.tool_choice.name } }
        : body.tool_choice,
    parallel_tool_calls: body.parallel_tool_calls,
    response_format:
      format?.type === 'json_schema'
        ? { type: 'json_schema' as const, json_schema: { name: format.name, schema: format.schema, strict: format.strict } }
        : format,
    logprobs: body.top_logprobs != null ? true : undefined,
    top_logprobs: body.top_logprobs,
  } as ChatBody;
  return withParamNames(RENAMES, () => chatConstraints(chatLike, limits));
}

/** Chat parameter paths → the Responses API's. */
const RENAMES: [RegExp, string][] = [
  [/^response_format\.json_schema\./, 'text.format.'],
  [/^tools\.(\d+)\.function\./, 'tools.$1.'],
  [/^tool_choice\.function\./, 'tool_choice.'],
];
