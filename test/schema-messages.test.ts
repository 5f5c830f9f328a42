/**
 * Every field of both request schemas, sent with a value of the wrong type, is a 400 that names the field
 * and says what is wrong, never "is required" (the field was there) and never zod's own wording.
 */
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../src/errors.js';
import { parseBody } from '../src/http/core/validation.js';
import { createSchemas } from '../src/http/openai/schemas.js';

const schemas = createSchemas({ maxTokens: 4096, maxMessages: 64, maxStop: 4, maxJsonDepth: 64 });
const valid = {
  completion: { prompt: 'x' },
  chat: { messages: [{ role: 'user', content: 'x' }] },
};
/** Values of every JSON type: for each field at least one is of a type it does not accept. */
const WRONG: unknown[] = [{ an: 'object' }, 'text', 12.5, true, [{ an: 'object' }]];

function errorFor(schema: keyof typeof valid, field: string, value: unknown): InvalidRequestError | undefined {
  try {
    parseBody(schemas[schema], { ...valid[schema], [field]: value });
  } catch (err) {
    return err as InvalidRequestError;
  }
  return undefined;
}

describe.each(['completion', 'chat'] as const)('%s fields', (schema) => {
  const fields = Object.keys(schemas[schema].shape);
  it.each(fields)('%s: a wrong type names the field and the problem', (field) => {
    const errors = WRONG.map((v) => errorFor(schema, field, v)).filter((e) => e !== undefined);
    // Every field refuses at least one of the values (none accepts anything).
    expect(errors.length, field).toBeGreaterThan(0);
    for (const err of errors) {
      expect(err).toBeInstanceOf(InvalidRequestError);
      expect(err.param?.startsWith(field), err.message).toBe(true);
      expect(err.message).not.toContain('is required');
      expect(err.message).not.toMatch(/Invalid input/);
      expect(err.message.startsWith(`${err.param}: `)).toBe(true);
    }
  });
});

describe('messages from the reported cases', () => {
  it.each([
    ['chat', 'temperature', 'hot', 'temperature: must be a number, not a string ("hot")'],
    ['chat', 'messages', 'a string', 'messages: must be an array, not a string ("a string")'],
    ['completion', 'logprobs', true, 'logprobs: must be a number, not true'],
    ['completion', 'stream', 'yes', 'stream: must be a boolean (true or false), not a string ("yes")'],
  ] as const)('%s %s', (schema, field, value, message) => {
    expect(errorFor(schema, field, value)?.message).toBe(message);
  });

  it('a field that is missing is still "is required"', () => {
    expect(() => parseBody(schemas.chat, {})).toThrow('messages: is required');
    expect(() => parseBody(schemas.chat, { messages: [{ role: 'user' }] })).toThrow('messages.0.content: is required');
  });
});
