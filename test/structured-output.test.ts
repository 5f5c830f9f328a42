/**
 * response_format (json_object / json_schema on both endpoints), logprobs and seed, through the official
 * client against a real server on the tiny model. The grammar decides every character the demo model may
 * write, so the output must parse and validate whatever the model prefers.
 */
import { Ajv } from 'ajv';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TINY_SCRIPT_TEXT, TINY_SCRIPT_TOKENS } from '../src/demo-model/demo-model.js';
import { scrape, value } from './helpers/prom.js';
import { useClientServer } from './helpers/client.js';
import { postJson } from './helpers/server.js';

const MODEL = 'structured-test';
const ctx = useClientServer(MODEL);

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 8 },
    age: { type: 'integer' },
    score: { type: 'number' },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, maxItems: 3 },
    address: { type: 'object', properties: { zip: { type: ['string', 'null'], maxLength: 5 } }, required: ['zip'] },
    kind: { anyOf: [{ const: 'person' }, { type: 'boolean' }] },
    ref: { $ref: '#/$defs/when' },
  },
  required: ['name', 'age'],
  $defs: { when: { type: 'string', format: 'date' } },
};
const validate = new Ajv({ strict: false, formats: { date: /^\d{4}-\d{2}-\d{2}$/ } }).compile(schema);
const messages = [{ role: 'user' as const, content: 'Describe someone.' }];
const jsonSchema = { type: 'json_schema' as const, json_schema: { name: 'person', schema, strict: true } };
/** A greedy json_schema request, long enough for the whole value. */
const schemaRequest = { model: MODEL, messages, response_format: jsonSchema, temperature: 0, max_tokens: 400 };

describe('json_schema', () => {
  it('chat: the answer parses and validates against the schema', async () => {
    const res = await ctx.client.chat.completions.create(schemaRequest);
    expect(res.choices[0]!.finish_reason).toBe('stop');
    const answer: unknown = JSON.parse(res.choices[0]!.message.content!);
    expect(validate(answer), JSON.stringify(validate.errors)).toBe(true);
  });

  it('streamed deltas reassemble to the non-streamed answer', async () => {
    const params = schemaRequest;
    const whole = await ctx.client.chat.completions.create(params);
    let text = '';
    for await (const chunk of await ctx.client.chat.completions.create({ ...params, stream: true }))
      text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(whole.choices[0]!.message.content);
  });

  it('completions: the text validates too', async () => {
    const res = await postJson(`${ctx.server.url}/v1/completions`, {
      prompt: 'JSON:',
      response_format: jsonSchema,
      temperature: 0,
      max_tokens: 400,
    });
    expect(res.status).toBe(200);
    expect(validate(JSON.parse(res.body.choices[0].text)), JSON.stringify(validate.errors)).toBe(true);
  });

  it("the client's parse() helper with a zod schema returns the parsed object", async () => {
    const Person = z.object({ name: z.string().max(6), likes: z.array(z.enum(['tea', 'coffee'])).max(2), adult: z.boolean() });
    const res = await ctx.client.chat.completions.parse({
      model: MODEL,
      messages,
      response_format: zodResponseFormat(Person, 'person'),
      temperature: 0,
      max_tokens: 200,
    });
    const parsed = res.choices[0]!.message.parsed;
    expect(Person.parse(parsed)).toEqual(JSON.parse(res.choices[0]!.message.content!));
  });

  it("the client's parse() helper with a strict zod function fills parsed_arguments", async () => {
    const tool = zodFunction({ name: 'book', parameters: z.object({ seats: z.number().int(), window: z.boolean() }) });
    const res = await ctx.client.chat.completions.parse({
      model: MODEL,
      messages,
      tools: [tool],
      tool_choice: 'required',
      parallel_tool_calls: false,
      temperature: 0,
      max_tokens: 200,
    });
    const call = res.choices[0]!.message.tool_calls![0]!;
    expect(call.type === 'function' && call.function.parsed_arguments).toEqual(
      JSON.parse(call.type === 'function' ? call.function.arguments : 'null'),
    );
  });

  it('stop strings do not cut the JSON', async () => {
    const res = await ctx.client.chat.completions.create({ ...schemaRequest, stop: ['"', ':'] });
    expect(validate(JSON.parse(res.choices[0]!.message.content!))).toBe(true);
  });

  it('json_object: any JSON object', async () => {
    const res = await ctx.client.chat.completions.create({
      model: MODEL,
      messages,
      response_format: { type: 'json_object' },
      temperature: 0,
      max_tokens: 400,
    });
    const content = res.choices[0]!.message.content!;
    // A free object can run to max_tokens; when it ended by itself it must parse.
    if (res.choices[0]!.finish_reason === 'stop') expect(typeof JSON.parse(content)).toBe('object');
    expect(content.trimStart().startsWith('{')).toBe(true);
  });

  const bad: [string, unknown, string][] = [
    [
      'an unknown type',
      { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'objekt' } } },
      'response_format.json_schema.schema.type',
    ],
    [
      'a remote $ref',
      { type: 'json_schema', json_schema: { name: 'x', schema: { $ref: 'https://example.com/s.json' } } },
      'response_format.json_schema.schema.$ref',
    ],
    [
      'a pattern with strict',
      { type: 'json_schema', json_schema: { name: 'x', strict: true, schema: { type: 'string', pattern: '^a' } } },
      'response_format.json_schema.schema.pattern',
    ],
    ['an empty enum', { type: 'json_schema', json_schema: { name: 'x', schema: { enum: [] } } }, 'response_format.json_schema.schema.enum'],
    [
      'a negative maxLength',
      { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', maxLength: -1 } } },
      'response_format.json_schema.schema.maxLength',
    ],
    ['an unknown format type', { type: 'yaml' }, 'response_format.type'],
    ['a missing name', { type: 'json_schema', json_schema: { schema: {} } }, 'response_format.json_schema.name'],
  ];
  it.each(bad)('%s is a 400 naming the field', async (_, format, param) => {
    for (const endpoint of ['/v1/chat/completions', '/v1/completions']) {
      const res = await postJson(`${ctx.server.url}${endpoint}`, { messages, prompt: 'x', response_format: format });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error.param).toBe(param);
      expect(res.body.error.message).toContain(param);
    }
  });
});

describe('logprobs', () => {
  it('chat: one entry per generated token, in the OpenAI shape, adding up to the answer', async () => {
    const res = await ctx.client.chat.completions.create({ model: MODEL, messages, temperature: 0, logprobs: true, top_logprobs: 3 });
    const { content } = res.choices[0]!.logprobs!;
    expect(content).toHaveLength(TINY_SCRIPT_TOKENS);
    expect(res.usage!.completion_tokens).toBe(TINY_SCRIPT_TOKENS);
    expect(Buffer.from(content!.flatMap((e) => e.bytes!)).toString('utf8')).toBe(TINY_SCRIPT_TEXT);
    for (const e of content!) {
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(e.top_logprobs).toHaveLength(3);
      // Greedy picks the most likely token; alternatives come most likely first.
      expect(e.top_logprobs[0]!.token).toBe(e.token);
      expect(e.top_logprobs[0]!.logprob).toBe(e.logprob);
      const lps = e.top_logprobs.map((t) => t.logprob);
      expect([...lps].sort((a, b) => b - a)).toEqual(lps);
    }
    // The scripted model is sure of itself.
    expect(Math.exp(content![0]!.logprob)).toBeGreaterThan(0.99);
  });

  it('chat: streamed entries equal the non-streamed ones', async () => {
    const params = { model: MODEL, messages, temperature: 0, logprobs: true, top_logprobs: 2 };
    const whole = await ctx.client.chat.completions.create(params);
    const streamed: unknown[] = [];
    for await (const chunk of await ctx.client.chat.completions.create({ ...params, stream: true }))
      streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(whole.choices[0]!.logprobs!.content);
  });

  it('completions: tokens, token_logprobs, top_logprobs and text_offset', async () => {
    const res = await ctx.client.completions.create({ model: MODEL, prompt: 'x', temperature: 0, max_tokens: 50, logprobs: 2 });
    const lp = res.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(TINY_SCRIPT_TOKENS);
    expect(lp.token_logprobs).toHaveLength(TINY_SCRIPT_TOKENS);
    expect(lp.top_logprobs!.every((t) => Object.keys(t).length === 2)).toBe(true);
    expect(lp.text_offset![0]).toBe(0);
    expect(lp.text_offset![1]).toBe(lp.tokens![0]!.length);
  });

  it('under a grammar, alternatives the grammar rules out are not listed', async () => {
    const format = { type: 'json_schema' as const, json_schema: { name: 'b', schema: { type: 'boolean' } } };
    const res = await ctx.client.chat.completions.create({
      model: MODEL,
      messages,
      response_format: format,
      temperature: 0,
      logprobs: true,
      top_logprobs: 5,
    });
    const first = res.choices[0]!.logprobs!.content![0]!;
    // Only "t…" or "f…" can start a boolean.
    expect(first.top_logprobs.every((t) => /^[tf]/.test(t.token))).toBe(true);
  });

  it('bad values are 400s naming the field', async () => {
    const cases: [string, object, string][] = [
      ['/v1/chat/completions', { messages, top_logprobs: 2 }, 'top_logprobs'],
      ['/v1/chat/completions', { messages, logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
      ['/v1/chat/completions', { messages, logprobs: 3 }, 'logprobs'],
      ['/v1/completions', { prompt: 'x', logprobs: 6 }, 'logprobs'],
      ['/v1/completions', { prompt: 'x', logprobs: true }, 'logprobs'],
    ];
    for (const [endpoint, body, param] of cases) {
      const res = await postJson(`${ctx.server.url}${endpoint}`, body);
      expect([res.status, res.body.error?.param], JSON.stringify(body)).toEqual([400, param]);
    }
  });
});

describe('UTF-8', () => {
  it('strings written under a grammar are valid UTF-8 text, whatever the sampler draws', async () => {
    // At temperature 1 under a grammar the demo model draws near-uniformly, lone bytes included: without
    // the UTF-8 guard, 1 string in 10 held bytes that are not text (they came back as U+FFFD).
    const format = { type: 'json_schema' as const, json_schema: { name: 's', schema: { type: 'string', maxLength: 8 } } };
    for (let seed = 0; seed < 60; seed++) {
      const res = await ctx.client.chat.completions.create({
        model: MODEL,
        messages,
        response_format: format,
        temperature: 1,
        seed,
        max_tokens: 60,
        logprobs: true,
      });
      const bytes = res.choices[0]!.logprobs!.content!.flatMap((e) => e.bytes!);
      // The bytes decode without replacement, and the string keeps its maxLength in characters.
      expect(new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes)), `seed ${seed}`).toBe(
        res.choices[0]!.message.content,
      );
      expect([...(JSON.parse(res.choices[0]!.message.content!) as string)].length).toBeLessThanOrEqual(8);
    }
  });
});

describe('seed', () => {
  // Under a grammar that rules out the script, the tiny model's choices are close to uniform: sampling
  // at temperature 1 is visibly random, so the seed decides the answer.
  const free = { type: 'json_schema' as const, json_schema: { name: 's', schema: { type: 'string', maxLength: 12 } } };
  const sample = async (seed: number) =>
    (await ctx.client.chat.completions.create({ model: MODEL, messages, response_format: free, temperature: 1, seed, max_tokens: 40 }))
      .choices[0]!.message.content;

  it('the same seed gives the same answer; different seeds differ', async () => {
    const a = await sample(7);
    expect(await sample(7)).toBe(a);
    const others = new Set([a, await sample(8), await sample(9), await sample(10)]);
    expect(others.size).toBeGreaterThan(1);
  });

  it('without a seed, two requests are sampled independently', async () => {
    const answers = new Set<string | null>();
    for (let i = 0; i < 4; i++) {
      answers.add(
        (await ctx.client.chat.completions.create({ model: MODEL, messages, response_format: free, temperature: 1, max_tokens: 40 }))
          .choices[0]!.message.content,
      );
    }
    expect(answers.size).toBeGreaterThan(1);
  });
});

describe('metrics', () => {
  it('count json_schema, json_object and logprobs requests per endpoint', async () => {
    const before = await scrape(ctx.server.metricsUrl ?? ctx.server.url);
    const read = (s: typeof before, endpoint: string, feature: string) =>
      value(s, 'qwen_feature_requests_total', { model: MODEL, endpoint, feature });
    await ctx.client.chat.completions.create({ ...schemaRequest, logprobs: true });
    await ctx.client.chat.completions.create({
      model: MODEL,
      messages,
      response_format: { type: 'json_object' },
      temperature: 0,
      max_tokens: 5,
    });
    await postJson(`${ctx.server.url}/v1/completions`, { prompt: 'x', logprobs: 0, max_tokens: 2 });
    // Rejected requests do not count.
    await postJson(`${ctx.server.url}/v1/completions`, { prompt: 'x', logprobs: 9 });
    const after = await scrape(ctx.server.metricsUrl ?? ctx.server.url);
    const chat = '/v1/chat/completions';
    const completions = '/v1/completions';
    expect(read(after, chat, 'json_schema') - read(before, chat, 'json_schema')).toBe(1);
    expect(read(after, chat, 'json_object') - read(before, chat, 'json_object')).toBe(1);
    expect(read(after, chat, 'logprobs') - read(before, chat, 'logprobs')).toBe(1);
    expect(read(after, completions, 'logprobs') - read(before, completions, 'logprobs')).toBe(1);
    expect(read(after, chat, 'tools') - read(before, chat, 'tools')).toBe(0);
  });
});
