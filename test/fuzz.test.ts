/**
 * Property-based fuzzing of both POST endpoints with thousands of generated bodies (wrong types, huge and
 * negative numbers, deep nesting, invalid UTF-8, empty and enormous strings): never a 5xx, every response
 * is an OpenAI error or a valid completion, and the server is healthy afterwards.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers/server.js';

let server: TestServer;

beforeAll(async () => {
  // Small limits keep valid requests cheap: at most 16 tokens each.
  server = await startServer(['--context-size', '256', '--max-tokens-limit', '16', '--body-limit', '65536', '--sequences', '4']);
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

const nested = (depth: number): unknown => (depth === 0 ? 'deep' : { a: [nested(depth - 1)] });

/** A value of any kind, with the awkward ones over-represented. */
const weird = fc.oneof(
  fc.anything(),
  fc.constantFrom(
    -1,
    0,
    1e308,
    -1e308,
    2 ** 53,
    Number.MAX_SAFE_INTEGER,
    0.5,
    '',
    ' ',
    '\u0000',
    '\ud800',
    '😀'.repeat(100),
    'x'.repeat(70_000),
    null,
    true,
    [],
    {},
    nested(50),
  ),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.integer(),
  fc.double(),
);

/** A field that is usually valid, sometimes just out of range, sometimes anything at all. */
const field = <T, U>(valid: fc.Arbitrary<T>, nearMiss: fc.Arbitrary<U>) =>
  fc.option(fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: nearMiss }, { weight: 1, arbitrary: weird }), {
    nil: undefined,
    freq: 2,
  });

const sampling = {
  model: field(fc.constant('tiny'), fc.constantFrom('gpt-4', '', 'TINY')),
  max_tokens: field(fc.integer({ min: 1, max: 16 }), fc.constantFrom(-5, 0, 17, 1e9)),
  temperature: field(fc.double({ min: 0, max: 2, noNaN: true }), fc.constantFrom(-0.1, 2.1, Infinity)),
  top_p: field(fc.double({ min: 0.01, max: 1, noNaN: true }), fc.constantFrom(0, -1, 1.5)),
  top_k: field(fc.integer({ min: 0, max: 100 }), fc.constantFrom(-1, 0.5)),
  seed: field(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(-1, 2 ** 40, 1.5)),
  stop: field(fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 4 })), fc.array(fc.string(), { minLength: 5, maxLength: 8 })),
  presence_penalty: field(fc.double({ min: -2, max: 2, noNaN: true }), fc.constantFrom(-2.5, 3)),
  frequency_penalty: field(fc.double({ min: -2, max: 2, noNaN: true }), fc.constantFrom(-2.5, 3)),
  stream: field(fc.boolean(), fc.constantFrom('true', 1)),
  stream_options: field(fc.record({ include_usage: fc.boolean() }), fc.constantFrom('yes', [])),
  n: field(fc.integer({ min: 1, max: 3 }), fc.constantFrom(0, 17, 1.5)),
  ignore_eos: field(fc.boolean(), fc.constantFrom('no', 0)),
  logit_bias: field(
    fc.dictionary(fc.integer({ min: 0, max: 500 }).map(String), fc.integer({ min: -100, max: 100 })),
    fc.constantFrom({ x: 1 }, { 1: 101 }, []),
  ),
  response_format: field(
    fc.oneof(
      fc.constantFrom({ type: 'text' }, { type: 'json_object' }),
      fc.record({
        type: fc.constant('json_schema'),
        json_schema: fc.record({ name: fc.constant('s'), schema: fc.constantFrom({ type: 'boolean' }, { enum: ['a', 1, null] }) }),
      }),
    ),
    fc.oneof(
      fc.constantFrom({ type: 'xml' }, 'json'),
      fc.record({ type: fc.constant('json_schema'), json_schema: fc.record({ name: fc.constant('s'), schema: fc.anything() }) }),
    ),
  ),
  extra_field: field(fc.anything(), fc.anything()),
};

/** Small JSON schemas, valid or not: the converter must answer each with a 200 or a 400, never a 500. */
const schemaLike = fc.letrec((tie) => ({
  schema: fc.oneof(
    { depthSize: 'small' },
    fc.record(
      {
        type: fc.constantFrom('string', 'integer', 'number', 'boolean', 'null', 'object', 'array', 'text', ['string', 'null']),
        properties: fc.dictionary(fc.string({ maxLength: 4 }), tie('schema'), { maxKeys: 3 }),
        items: tie('schema'),
        enum: fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant({})), { maxLength: 3 }),
        maxLength: fc.integer({ min: -1, max: 8 }),
        minimum: fc.integer(),
        $ref: fc.constantFrom('#/$defs/a', 'http://x', '#/definitions/b'),
        anyOf: fc.array(tie('schema'), { maxLength: 2 }),
        strict: fc.boolean(),
      },
      { requiredKeys: [] },
    ),
    fc.anything(),
  ),
})).schema;

const tools = field(
  fc.array(
    fc.record({
      type: fc.constant('function'),
      function: fc.record({
        name: fc.constantFrom('f', 'g'),
        parameters: fc.constant({ type: 'object', properties: { a: { type: 'boolean' } } }),
      }),
    }),
    {
      maxLength: 2,
    },
  ),
  fc.array(
    fc.record({
      type: fc.constantFrom('function', 'web'),
      function: fc.record({ name: fc.string({ maxLength: 5 }), parameters: schemaLike, strict: fc.boolean() }, { requiredKeys: [] }),
    }),
    {
      maxLength: 2,
    },
  ),
);

const completionBody = fc.record(
  {
    ...sampling,
    logprobs: field(fc.integer({ min: 0, max: 5 }), fc.constantFrom(6, true, -1)),
    prompt: fc.oneof(
      {
        weight: 12,
        arbitrary: fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.array(fc.string(), { minLength: 1, maxLength: 1 })),
      },
      { weight: 1, arbitrary: fc.constantFrom(undefined, [], ['a', 'b'], [1, 2]) },
      { weight: 1, arbitrary: weird },
    ),
  },
  { requiredKeys: ['prompt'] },
);

const message = fc.record({
  role: fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom('system', 'user', 'assistant', 'developer') },
    { weight: 1, arbitrary: fc.constantFrom('tool', 'wizard', 5) },
  ),
  tool_calls: fc.constantFrom(
    undefined,
    [],
    [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }],
    [{ id: 'c1', function: {} }],
  ),
  tool_call_id: fc.constantFrom(undefined, 'c1', 'nope', 5),
  content: fc.oneof(
    {
      weight: 12,
      arbitrary: fc.oneof(fc.string(), fc.array(fc.record({ type: fc.constant('text'), text: fc.string() }), { maxLength: 3 })),
    },
    { weight: 1, arbitrary: fc.constantFrom(null, 42, [{ type: 'image_url', image_url: {} }]) },
    { weight: 1, arbitrary: weird },
  ),
});
const chatBody = fc.record(
  {
    ...sampling,
    messages: fc.oneof(
      { weight: 12, arbitrary: fc.array(message, { minLength: 1, maxLength: 5 }) },
      { weight: 1, arbitrary: fc.constantFrom([], 'hello', null) },
      { weight: 1, arbitrary: weird },
    ),
    tools,
    tool_choice: field(
      fc.constantFrom('auto', 'none', 'required', { type: 'function', function: { name: 'f' } }),
      fc.constantFrom('always', { type: 'function' }, 3),
    ),
    parallel_tool_calls: field(fc.boolean(), fc.constantFrom('no', 1)),
    logprobs: field(fc.boolean(), fc.constantFrom(3, 'yes')),
    top_logprobs: field(fc.integer({ min: 0, max: 20 }), fc.constantFrom(-1, 21, 2.5)),
  },
  { requiredKeys: ['messages'] },
);

function checkShape(status: number, contentType: string, text: string): void {
  expect(status, text.slice(0, 300)).toBeLessThan(500);
  if (status === 200 && contentType.startsWith('text/event-stream')) {
    expect(text.trimEnd().endsWith('data: [DONE]'), text.slice(-300)).toBe(true);
    expect(text).not.toContain('"error"');
    return;
  }
  const body = JSON.parse(text) as Record<string, any>;
  if (status === 200) {
    expect(['text_completion', 'chat.completion']).toContain(body.object);
    expect(body.choices.length).toBeGreaterThanOrEqual(1);
    expect(['stop', 'length', 'tool_calls']).toContain(body.choices[0].finish_reason);
    expect(Number.isInteger(body.usage.completion_tokens)).toBe(true);
    return;
  }
  expect(Object.keys(body)).toEqual(['error']);
  expect(typeof body.error.message).toBe('string');
  expect(typeof body.error.type).toBe('string');
  expect('param' in body.error && 'code' in body.error).toBe(true);
}

const statuses = new Map<number, number>();

async function send(path: string, body: string | Buffer): Promise<void> {
  const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  checkShape(res.status, res.headers.get('content-type') ?? '', await res.text());
}

it('POST /v1/completions: 1500 generated bodies, no 5xx, every response well-formed', { timeout: 180_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(completionBody, async (body) => send('/v1/completions', JSON.stringify(body))),
    { numRuns: 1500, seed: 20261129 },
  );
});

it('POST /v1/chat/completions: 1500 generated bodies, no 5xx, every response well-formed', { timeout: 180_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(chatBody, async (body) => send('/v1/chat/completions', JSON.stringify(body))),
    { numRuns: 1500, seed: 20261130 },
  );
});

it('raw bodies: invalid UTF-8, truncated JSON, binary noise', { timeout: 120_000 }, async () => {
  const prefix = Buffer.from('{"prompt":"');
  const suffix = Buffer.from('","max_tokens":2}');
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (bytes, wrap) => {
      const body = wrap ? Buffer.concat([prefix, Buffer.from(bytes), suffix]) : Buffer.from(bytes);
      await send(wrap ? '/v1/completions' : '/v1/chat/completions', body);
    }),
    { numRuns: 600, seed: 7 },
  );
  // Deep nesting, built as text (30000 levels: deeper than any recursive walker's stack).
  await send('/v1/completions', `{"prompt":"x","max_tokens":1,"extra":${'['.repeat(30000)}${']'.repeat(30000)}}`);
  await send('/v1/chat/completions', `{"messages":${'['.repeat(30000)}${']'.repeat(30000)}}`);
  // Invalid UTF-8 inside a valid JSON string is decoded with replacement characters and served.
  await send('/v1/completions', Buffer.concat([prefix, Buffer.from([0xff, 0xfe, 0xc3]), suffix]));
});

it('the server is healthy afterwards and still answers correctly', async () => {
  // The generators reach both sides: plenty of served requests and plenty of refusals.
  console.log('fuzz statuses:', Object.fromEntries(statuses));
  expect(statuses.get(200) ?? 0).toBeGreaterThan(200);
  expect(statuses.get(400) ?? 0).toBeGreaterThan(200);
  const health = await fetch(`${server.url}/health`);
  expect(health.status).toBe(200);
  const res = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'x', max_tokens: 2, temperature: 0 }),
  });
  expect(((await res.json()) as { choices: { text: string }[] }).choices[0]!.text).toBe('Hello, world! ');
  expect(server.proc.exitCode).toBeNull();
});
