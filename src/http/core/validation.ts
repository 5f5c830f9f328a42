/**
 * What every dialect's request validation shares: parsing a body against a zod schema into a 400 that names
 * the first offending field, the operator limits such schemas enforce, and the field types several APIs
 * declare alike. Each dialect's own schemas live in its folder. Unknown fields are ignored (clients send
 * many we do not use); known fields of the wrong type or range are a 400 naming the field.
 */
import { z } from 'zod';
import { InvalidRequestError } from '../../errors.js';
import { parseClientJson } from '../middleware/json-depth.js';

/** Operator limits (flags), each named in the message of a request that exceeds it. */
export interface InputLimits {
  maxTokens: number;
  maxMessages: number;
  maxStop: number;
  /** --max-json-depth: also bounds the JSON strings a request carries (tool call arguments). */
  maxJsonDepth: number;
}

export const num = z.number().refine(Number.isFinite, 'must be a finite number');

/** OpenAI's sampling ranges (chat, completions, Responses). */
export const temperatureField = num.min(0, 'must be between 0 and 2').max(2, 'must be between 0 and 2');
export const topPField = num.gt(0, 'must be in (0, 1]').max(1, 'must be in (0, 1]');

/** OpenAI's most alternatives per token (chat top_logprobs, Responses top_logprobs). */
export const MAX_TOP_LOGPROBS = 20;

/** An integer field between 0 and `max`. */
export const upTo = (max: number) =>
  z.number().int('must be an integer').min(0, `must be between 0 and ${max}`).max(max, `must be between 0 and ${max}`);

/** A token budget field (max_tokens and its aliases): at least 1, at most --max-tokens-limit. */
export const maxTokensField = (limit: number) =>
  z.number().int('must be an integer').min(1, 'must be at least 1').max(limit, `must be at most ${limit} (--max-tokens-limit)`);

/** OpenAI's rule for function names (Anthropic's tool names follow it too). */
export const functionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, underscores or dashes');

/** JSON schema objects are checked (and turned into grammars) by src/structured/json-schema.ts. */
export const schemaObject = z.record(z.string(), z.unknown(), { error: 'must be a JSON schema object' });

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

/** A content field's text: a string as is, the texts of its parts joined, nothing for an absent one. */
export function joinText(content: string | readonly { text: string }[] | null | undefined): string {
  if (content == null) return '';
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

/** A call's arguments as the client sent them (a JSON string), parsed for the chat template. */
export function callArguments(text: string, param: string, maxJsonDepth: number): unknown {
  return parseClientJson(text, param, maxJsonDepth, 'the arguments of the call');
}

/** A 400 for a field whose value breaks a rule the schema cannot express. */
export function invalidValue(param: string, message: string): InvalidRequestError {
  return new InvalidRequestError(`${param}: ${message}`, param, 'invalid_value');
}

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
