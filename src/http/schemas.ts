/**
 * Request bodies of the OpenAI endpoints, validated with zod. Unknown fields are ignored (OpenAI
 * clients send many we do not use); known fields of the wrong type or range are a 400 naming the field.
 */
import { z } from 'zod';
import { InvalidRequestError } from '../errors.js';
import type { ChatMessage, GenerateInput, SamplingParams } from '../shared/protocol.js';

const num = z.number().refine(Number.isFinite, 'must be a finite number');
const optional = <T extends z.ZodType>(t: T) => t.nullish();

/** Operator limits (flags), each named in the message of a request that exceeds it. */
export interface InputLimits {
  maxTokens: number;
  maxMessages: number;
  maxStop: number;
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
    n: optional(
      z
        .number()
        .int('must be an integer')
        .refine((n) => n === 1, 'only n=1 is supported'),
    ),
    ignore_eos: optional(z.boolean()),
    user: optional(z.string()),
  };
}

const textPart = z.object({ type: z.literal('text', { error: 'only text content parts are supported' }), text: z.string() });
const content = z.union([z.string(), z.array(textPart)], { error: 'must be a string or an array of text parts' });

const message = z.discriminatedUnion(
  'role',
  [
    z.object({ role: z.literal('system'), content }),
    z.object({ role: z.literal('developer'), content }),
    z.object({ role: z.literal('user'), content }),
    z.object({ role: z.literal('assistant'), content: content.nullish() }),
  ],
  { error: 'role must be one of system, developer, user, assistant' },
);

export function createSchemas(limits: InputLimits) {
  const sampling = samplingFields(limits);
  const completion = z.object({
    ...sampling,
    prompt: z.union([z.string(), z.array(z.string()).length(1, 'must be a string or an array of exactly one string')], {
      error: 'must be a string or an array of one string (token arrays are not supported)',
    }),
    echo: optional(z.literal(false, { error: 'echo is not supported' })),
    logprobs: optional(z.null({ error: 'logprobs are not supported' })),
    best_of: optional(z.literal(1, { error: 'only best_of=1 is supported' })),
    suffix: optional(z.null({ error: 'suffix is not supported' })),
  });
  const chat = z.object({
    ...sampling,
    messages: z
      .array(message)
      .min(1, 'must contain at least one message')
      .max(limits.maxMessages, `at most ${limits.maxMessages} messages (--max-messages)`),
    max_completion_tokens: maxTokensField(limits.maxTokens),
    logprobs: optional(z.literal(false, { error: 'logprobs are not supported' })),
    tools: optional(z.array(z.unknown()).max(0, 'tools are not supported')),
  });
  return { completion, chat };
}

type Schemas = ReturnType<typeof createSchemas>;

export type CompletionBody = z.infer<Schemas['completion']>;
export type ChatBody = z.infer<Schemas['chat']>;

/** Parses a body or throws a 400 that names the first offending field. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError('The request body must be a JSON object.', null, 'invalid_body');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.map(String).join('.') || null;
  const message = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
  throw new InvalidRequestError(`${param ?? 'body'}: ${message}`, param, 'invalid_value');
}

function flatten(c: string | { text: string }[] | null | undefined): string {
  if (c == null) return '';
  return typeof c === 'string' ? c : c.map((p) => p.text).join('');
}

export function chatInput(body: ChatBody): GenerateInput {
  const messages: ChatMessage[] = body.messages.map((m) => ({
    // "developer" is OpenAI's newer name for the system role.
    role: m.role === 'developer' ? 'system' : m.role,
    content: flatten(m.content),
  }));
  return { kind: 'chat', messages };
}

export function completionInput(body: CompletionBody): GenerateInput {
  return { kind: 'text', prompt: typeof body.prompt === 'string' ? body.prompt : body.prompt[0]! };
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
  };
}
