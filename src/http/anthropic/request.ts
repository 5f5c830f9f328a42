/**
 * The Anthropic Messages API request (POST /v1/messages, /v1/messages/count_tokens) mapped into the neutral
 * GenerationRequest: `system` and the content blocks become chat messages (tool_use blocks → assistant
 * tool calls, tool_result blocks → tool messages), tools / tool_choice the answer's shape, each with its
 * Messages API field path for errors.
 */
import { z } from 'zod';
import type { ChatMessage, GenerateInput } from '../../shared/protocol.js';
import type { GenerationRequest } from '../core/generation.js';
import type { ShapeRequest, ToolChoiceDeclaration } from '../core/shape.js';
import { ToolCallLedger } from '../core/tool-results.js';
import { functionName, invalidValue, joinText, maxTokensField, num, textOnly, type InputLimits } from '../core/validation.js';

const textBlock = z.object({ type: z.literal('text'), text: z.string() });
/** Images and documents, in a message or in a tool result. */
const mediaBlock = textOnly(['image', 'document'], 'blocks');
/**
 * Extended thinking that an earlier answer returned, which clients send back with the history. Accepted in
 * assistant messages and left out of the prompt, as Anthropic does with thinking from earlier turns.
 */
const thinking = z.object({ type: z.literal('thinking'), thinking: z.string(), signature: z.string().optional() });
const redactedThinking = z.object({ type: z.literal('redacted_thinking'), data: z.string() });
const toolUse = z.object({
  type: z.literal('tool_use'),
  id: z.string().min(1),
  name: z.string(),
  input: z.record(z.string(), z.unknown()),
});
const toolResult = z.object({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1),
  content: z
    .union([
      z.string(),
      z.array(z.discriminatedUnion('type', [textBlock, mediaBlock], { error: "tool_result content blocks must be 'text'" })),
    ])
    .optional(),
  is_error: z.boolean().optional(),
});
const block = z.discriminatedUnion('type', [textBlock, toolUse, toolResult, thinking, redactedThinking, mediaBlock], {
  error: "content blocks must be 'text', 'tool_use', 'tool_result', 'thinking' or 'redacted_thinking'",
});
const message = z.object({
  role: z.enum(['user', 'assistant'], { error: "role must be 'user' or 'assistant' (the system prompt goes in `system`)" }),
  content: z.union([z.string(), z.array(block)], { error: 'must be a string or an array of content blocks' }),
});
const tool = z.object({
  name: functionName,
  description: z.string().optional(),
  input_schema: z.record(z.string(), z.unknown(), { error: 'must be a JSON schema object' }),
  type: z.literal('custom').optional(),
});
const toolChoice = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
    z.object({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
    z.object({ type: z.literal('tool'), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
    z.object({ type: z.literal('none') }),
  ],
  { error: "type must be one of 'auto', 'any', 'tool', 'none'" },
);

/** Fields shared by /v1/messages and /v1/messages/count_tokens. */
function promptFields(limits: InputLimits) {
  return {
    model: z.string().nullish(),
    system: z.union([z.string(), z.array(textBlock)], { error: 'must be a string or an array of text blocks' }).optional(),
    messages: z
      .array(message)
      .min(1, 'must contain at least one message')
      .max(limits.maxMessages, `at most ${limits.maxMessages} messages (--max-messages)`),
    tools: z.array(tool).optional(),
    tool_choice: toolChoice.optional(),
  };
}

export function messagesSchemas(limits: InputLimits) {
  const unit = num.min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1');
  const messages = z.object({
    ...promptFields(limits),
    // Required by the Messages API.
    max_tokens: maxTokensField(limits.maxTokens),
    temperature: unit.optional(),
    top_p: unit.optional(),
    top_k: z.number().int('must be an integer').min(0, 'must be at least 0').optional(),
    stop_sequences: z.array(z.string()).max(limits.maxStop, `at most ${limits.maxStop} stop sequences (--max-stop)`).optional(),
    stream: z.boolean().optional(),
    metadata: z.object({ user_id: z.string().nullish() }).optional(),
    thinking: z.object({ type: z.literal('disabled', { error: 'extended thinking is not supported' }) }).optional(),
  });
  return { messages, countTokens: z.object(promptFields(limits)) };
}

type PromptBody = z.infer<z.ZodObject<ReturnType<typeof promptFields>>>;
export type MessagesBody = z.infer<ReturnType<typeof messagesSchemas>['messages']>;

export function messagesInput(body: PromptBody): GenerateInput {
  const messages: ChatMessage[] = [];
  const system = joinText(body.system);
  if (system) messages.push({ role: 'system', content: system });
  const ledger = new ToolCallLedger({
    unknown: (id) => `no earlier tool_use block has id '${id}'`,
    unanswered: (id) => `the tool_use '${id}' has no tool_result`,
  });
  body.messages.forEach((m, i) => {
    if (typeof m.content === 'string') return void messages.push({ role: m.role, content: m.content });
    let text = '';
    const calls: ChatMessage['toolCalls'] = [];
    m.content.forEach((b, j) => {
      if (b.type === 'text') text += b.text;
      else if (b.type === 'thinking' || b.type === 'redacted_thinking') {
        if (m.role !== 'assistant') throw invalidValue(`messages.${i}.content.${j}`, `${b.type} blocks belong to assistant messages`);
      } else if (b.type === 'tool_use') {
        if (m.role !== 'assistant') throw invalidValue(`messages.${i}.content.${j}`, 'tool_use blocks belong to assistant messages');
        calls.push({ id: b.id, name: b.name, arguments: b.input });
        ledger.call(b.id, `messages.${i}.content.${j}`);
      } else {
        ledger.result(b.tool_use_id, `messages.${i}.content.${j}.tool_use_id`);
        const content = joinText(b.content);
        messages.push({ role: 'tool', toolCallId: b.tool_use_id, content: b.is_error ? `Error: ${content}` : content });
      }
    });
    if (calls.length > 0) messages.push({ role: 'assistant', content: text, toolCalls: calls });
    else if (text !== '' || m.content.every((b) => b.type === 'text')) messages.push({ role: m.role, content: text });
  });
  ledger.close();
  return { kind: 'chat', messages };
}

function choiceDeclaration(choice: PromptBody['tool_choice']): ToolChoiceDeclaration | undefined {
  if (choice === undefined) return undefined;
  const param = 'tool_choice';
  switch (choice.type) {
    case 'any':
      return { type: 'required', as: 'any', param };
    case 'tool':
      return { type: 'function', name: choice.name, as: 'tool', param, nameParam: 'tool_choice.name' };
    default:
      return { type: choice.type, as: choice.type, param };
  }
}

/** The answer's shape (tools), with errors naming the Messages API's own fields. */
export function messagesShape(body: PromptBody): ShapeRequest {
  const choice = body.tool_choice;
  return {
    tools: body.tools?.map((t, i) => ({
      name: t.name,
      description: t.description,
      parameters: t.input_schema,
      nameParam: `tools.${i}.name`,
      parametersParam: `tools.${i}.input_schema`,
    })),
    toolsParam: 'tools',
    toolChoice: choiceDeclaration(choice),
    parallelToolCalls: choice && 'disable_parallel_tool_use' in choice && choice.disable_parallel_tool_use ? false : undefined,
  };
}

export function messagesRequest(body: MessagesBody): GenerationRequest {
  return {
    model: body.model,
    inputs: [messagesInput(body)],
    sampling: {
      temperature: body.temperature,
      topP: body.top_p,
      topK: body.top_k,
      stop: body.stop_sequences,
      maxTokens: body.max_tokens,
      maxTokensParam: 'max_tokens',
    },
    shape: messagesShape(body),
    promptParam: 'messages',
    stream: body.stream === true,
  };
}
