/**
 * Request bodies of the OpenAI endpoints (completions, chat completions, embeddings), validated with zod.
 */
import { z } from 'zod';
import type { GenerateInput } from '../../shared/protocol.js';
import {
  functionName,
  MAX_TOP_LOGPROBS,
  maxTokensField,
  num,
  schemaObject,
  temperatureField,
  textOnly,
  topPField,
  upTo,
  type InputLimits,
} from '../core/validation.js';

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

const optional = <T extends z.ZodType>(t: T) => t.nullish();

/** Sampling fields of the OpenAI APIs. */
function samplingFields(limits: InputLimits) {
  return {
    model: optional(z.string()),
    max_tokens: optional(maxTokensField(limits.maxTokens)),
    temperature: optional(temperatureField),
    top_p: optional(topPField),
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
    /** Vendor field: false turns speculative decoding off for this request (its output is the same either way). */
    speculative: optional(z.boolean()),
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

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const contentPart = z.discriminatedUnion('type', [textPart, textOnly(['image_url', 'input_audio', 'file'], 'content parts')], {
  error: "only 'text' content parts are supported",
});
const content = z.union([z.string(), z.array(contentPart)], { error: 'must be a string or an array of text parts' });

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
/** OpenAI's limit on alternatives per token in completions. */
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
    max_completion_tokens: optional(maxTokensField(limits.maxTokens)),
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
