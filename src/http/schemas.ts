/**
 * Request bodies of the OpenAI endpoints, validated with zod. Unknown fields are ignored (OpenAI
 * clients send many we do not use); known fields of the wrong type or range are a 400 naming the field.
 */
import { z } from 'zod';
import { InvalidRequestError } from '../errors.js';
import { parseClientJson } from './json-depth.js';
import { ToolCallLedger } from './tool-results.js';
import type { ChatMessage, GenerateInput, SamplingParams } from '../shared/protocol.js';

export const num = z.number().refine(Number.isFinite, 'must be a finite number');

/** Most choices in one request (n × prompts): each holds a sequence of its own. */
export const MAX_CHOICES = 16;

const tokenIds = z.array(z.number().int('token ids must be integers').min(0, 'token ids must be >= 0'), {
  error: 'must be an array of token ids',
});

/** Completion prompts and embedding inputs in OpenAI's four forms: text, texts, token ids, token-id arrays. */
export const textsOrTokens = z.union(
  [
    z.string(),
    z.array(z.string()).min(1, 'must not be an empty array'),
    tokenIds.min(1, 'must not be an empty array'),
    z.array(tokenIds.min(1, 'a token-id prompt must not be empty')).min(1, 'must not be an empty array'),
  ],
  { error: 'must be a string, an array of strings, an array of token ids, or an array of token-id arrays' },
);

/**
 * One input per text or token-id array of a textsOrTokens value, each knowing the field it came from:
 * `field` when the value is one text or one token array, `field.N` for the N-th of several.
 */
export function inputsOf(value: z.infer<typeof textsOrTokens>, field: string, suffix?: string): GenerateInput[] {
  const one = typeof value === 'string' || typeof value[0] === 'number';
  const each: (string | number[])[] = one ? [value as string | number[]] : (value as string[] | number[][]);
  return each.map((p, i) => {
    const param = one ? field : `${field}.${i}`;
    return typeof p === 'string' ? { kind: 'text', prompt: p, suffix, param } : { kind: 'tokens', tokens: p, suffix, param };
  });
}

/** An integer field between 0 and `max`. */
const upTo = (max: number) =>
  z.number().int('must be an integer').min(0, `must be between 0 and ${max}`).max(max, `must be between 0 and ${max}`);
const optional = <T extends z.ZodType>(t: T) => t.nullish();

/** Operator limits (flags), each named in the message of a request that exceeds it. */
export interface InputLimits {
  maxTokens: number;
  maxMessages: number;
  maxStop: number;
  /** --max-json-depth: also bounds the JSON strings a request carries (tool call arguments). */
  maxJsonDepth: number;
}

const maxTokensField = (limit: number) =>
  optional(z.number().int('must be an integer').min(1, 'must be at least 1').max(limit, `must be at most ${limit} (--max-tokens-limit)`));

function samplingFields(limits: InputLimits) {
  return {
    model: optional(z.string()),
    max_tokens: maxTokensField(limits.maxTokens),
    temperature: optional(num.min(0, 'must be between 0 and 2').max(2, 'must be between 0 and 2')),
    top_p: optional(num.gt(0, 'must be in (0, 1]').max(1, 'must be in (0, 1]')),
    top_k: optional(z.number().int('must be an integer').min(0, 'must be at least 0')),
    seed: optional(
      z
        .number()
        .int('must be an integer')
        .min(0)
        .max(2 ** 32 - 1, 'must fit in 32 bits'),
    ),
    stop: optional(
      z
        .union([z.string(), z.array(z.string())], { error: 'must be a string or an array of strings' })
        .refine((v) => typeof v === 'string' || v.length <= limits.maxStop, `at most ${limits.maxStop} stop sequences (--max-stop)`),
    ),
    presence_penalty: optional(num.min(-2, 'must be between -2 and 2').max(2, 'must be between -2 and 2')),
    frequency_penalty: optional(num.min(-2, 'must be between -2 and 2').max(2, 'must be between -2 and 2')),
    stream: optional(z.boolean()),
    stream_options: optional(z.object({ include_usage: optional(z.boolean()) })),
    n: optional(z.number().int('must be an integer').min(1, 'must be at least 1').max(MAX_CHOICES, `must be at most ${MAX_CHOICES}`)),
    ignore_eos: optional(z.boolean()),
    logit_bias: optional(
      z.record(
        z.string().regex(/^(0|[1-9][0-9]*)$/, 'keys must be token ids'),
        num.min(-100, 'must be between -100 and 100').max(100, 'must be between -100 and 100'),
        {
          error: 'must be an object mapping token ids to biases',
        },
      ),
    ),
    user: optional(z.string()),
  };
}

/**
 * Content of a kind a text-only model cannot read (images, audio, files): a 400 at the part's `type`
 * (`messages.0.content.1.type`) that names it and says why, instead of a union error about the whole
 * content. An option of each API's discriminated union of parts.
 * @param what what the API calls its parts ("content parts", "blocks")
 */
export function textOnly<const T extends string>(types: readonly [T, ...T[]], what: string) {
  return (
    z
      .object({ type: z.enum(types) })
      .superRefine((part, ctx) =>
        ctx.addIssue({ code: 'custom', path: ['type'], message: `'${part.type}' ${what} are not supported: this model reads text only` }),
      )
      // Never reached (the issue above fails every such part): the parsed body's type holds no such part.
      .transform(() => z.NEVER)
  );
}

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const contentPart = z.discriminatedUnion('type', [textPart, textOnly(['image_url', 'input_audio', 'file'], 'content parts')], {
  error: "only 'text' content parts are supported",
});
const content = z.union([z.string(), z.array(contentPart)], { error: 'must be a string or an array of text parts' });

/** OpenAI's rule for function names. */
export const functionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, underscores or dashes');

const toolCall = z.object({
  id: z.string().min(1, 'must not be empty'),
  type: z.literal('function', { error: "must be 'function'" }),
  function: z.object({ name: functionName, arguments: z.string() }),
});

const message = z.discriminatedUnion(
  'role',
  [
    z.object({ role: z.literal('system'), content }),
    z.object({ role: z.literal('developer'), content }),
    z.object({ role: z.literal('user'), content }),
    z.object({ role: z.literal('assistant'), content: content.nullish(), tool_calls: optional(z.array(toolCall)) }),
    z.object({ role: z.literal('tool'), content, tool_call_id: z.string().min(1, 'must not be empty') }),
  ],
  { error: 'role must be one of system, developer, user, assistant, tool' },
);

/** JSON schema objects are checked (and turned into grammars) by src/structured/json-schema.ts. */
const schemaObject = z.record(z.string(), z.unknown(), { error: 'must be a JSON schema object' });

const tool = z.object({
  type: z.literal('function', { error: "only 'function' tools are supported" }),
  function: z.object({
    name: functionName,
    description: optional(z.string()),
    parameters: optional(schemaObject),
    strict: optional(z.boolean()),
  }),
});

const toolChoice = z.union(
  [z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: functionName }) })],
  { error: "must be 'none', 'auto', 'required' or {type: 'function', function: {name}}" },
);

const responseFormat = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({
        name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, underscores or dashes'),
        description: optional(z.string()),
        schema: optional(schemaObject),
        strict: optional(z.boolean()),
      }),
    }),
  ],
  { error: "type must be one of 'text', 'json_object', 'json_schema'" },
);

/** OpenAI's most tools per request. */
const MAX_TOOLS = 128;
/** OpenAI's limits on alternatives per token. */
const MAX_TOP_LOGPROBS = 20;
const MAX_COMPLETION_LOGPROBS = 5;

const deprecatedFunctions = (field: string) =>
  optional(z.never({ error: `${field} is deprecated and not supported; use tools and tool_choice` }));

export function createSchemas(limits: InputLimits) {
  const sampling = samplingFields(limits);
  const completion = z.object({
    ...sampling,
    prompt: textsOrTokens,
    echo: optional(z.boolean()),
    logprobs: optional(upTo(MAX_COMPLETION_LOGPROBS)),
    response_format: optional(responseFormat),
    best_of: optional(z.literal(1, { error: 'only best_of=1 is supported' })),
    suffix: optional(z.string()),
  });
  const chat = z.object({
    ...sampling,
    messages: z
      .array(message)
      .min(1, 'must contain at least one message')
      .max(limits.maxMessages, `at most ${limits.maxMessages} messages (--max-messages)`),
    max_completion_tokens: maxTokensField(limits.maxTokens),
    logprobs: optional(z.boolean()),
    top_logprobs: optional(upTo(MAX_TOP_LOGPROBS)),
    tools: optional(z.array(tool).max(MAX_TOOLS, `at most ${MAX_TOOLS} tools`)),
    tool_choice: optional(toolChoice),
    parallel_tool_calls: optional(z.boolean()),
    response_format: optional(responseFormat),
    functions: deprecatedFunctions('functions'),
    function_call: deprecatedFunctions('function_call'),
  });
  return { completion, chat };
}

type Schemas = ReturnType<typeof createSchemas>;

export type CompletionBody = z.infer<Schemas['completion']>;
export type ChatBody = z.infer<Schemas['chat']>;

/** Parses a body or throws a 400 that names the first offending field and what is wrong with it. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError('The request body must be a JSON object.', null, 'invalid_body');
  }
  // reportInput: without it zod's issues do not say what was sent, and a wrong type reads like a missing field.
  const result = schema.safeParse(body, { reportInput: true });
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.map(String).join('.') || null;
  throw new InvalidRequestError(`${param ?? 'body'}: ${issueMessage(issue)}`, param, 'invalid_value');
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union')) return 'is required';
  if (issue.code !== 'invalid_type') return issue.message;
  // zod's own wording ("Invalid input: expected number, received string"); our schemas' messages are kept.
  if (!issue.message.startsWith('Invalid input')) return issue.message;
  return `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}, not ${kindOf(issue.input)}`;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean (true or false)',
  array: 'an array',
  object: 'an object',
  record: 'an object',
  null: 'null',
};

/** What a JSON value is, for messages: "a string (\"hot\")", "an array", "null". */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)})`;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return `${v}`;
  return 'an object';
}

function flatten(c: string | { text: string }[] | null | undefined): string {
  if (c == null) return '';
  return typeof c === 'string' ? c : c.map((p) => p.text).join('');
}

/** @param maxJsonDepth --max-json-depth, for the tool calls' arguments (JSON strings) */
export function chatInput(body: ChatBody, maxJsonDepth: number): GenerateInput {
  const messages = body.messages.map((m, i): ChatMessage => {
    // "developer" is OpenAI's newer name for the system role.
    if (m.role === 'developer') return { role: 'system', content: flatten(m.content) };
    if (m.role === 'tool') return { role: 'tool', content: flatten(m.content), toolCallId: m.tool_call_id };
    if (m.role === 'assistant' && m.tool_calls?.length) {
      const toolCalls = m.tool_calls.map((c, j) => ({
        id: c.id,
        name: c.function.name,
        arguments: callArguments(c.function.arguments, `messages.${i}.tool_calls.${j}.function.arguments`, maxJsonDepth),
      }));
      return { role: 'assistant', content: flatten(m.content), toolCalls };
    }
    return { role: m.role, content: flatten(m.content) };
  });
  checkToolResults(messages);
  return { kind: 'chat', messages };
}

/** A call's arguments as the client sent them (a JSON string), parsed for the chat template. */
export function callArguments(text: string, param: string, maxJsonDepth: number): unknown {
  return parseClientJson(text, param, maxJsonDepth, 'the arguments of the call');
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
export function completionInputs(body: CompletionBody): GenerateInput[] {
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

type SamplingFields = Pick<CompletionBody, keyof ReturnType<typeof samplingFields>>;

/** OpenAI defaults: temperature 1, top_p 1; top_k off; completions default to 16 tokens. */
export function samplingParams(body: SamplingFields, maxTokens: number | undefined, maxTokensParam: string): SamplingParams {
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: body.top_k ?? 0,
    seed: body.seed ?? undefined,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    maxTokens,
    maxTokensParam,
    stop: stop.filter((s) => s.length > 0),
    ignoreEos: body.ignore_eos ?? false,
    logitBias: Object.entries(body.logit_bias ?? {}).map(([token, bias]) => [Number(token), bias]),
  };
}
