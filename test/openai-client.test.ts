/**
 * The official `openai` client against a real server running the tiny scripted model. The model
 * greedily produces TINY_SCRIPT_TEXT then EOS, so every assertion can be exact.
 */
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_SCRIPT_TEXT, TINY_SCRIPT_TOKENS } from '../src/demo-model/demo-model.js';
import { startServer, type TestServer } from './helpers/server.js';

let server: TestServer;
let client: OpenAI;
const MODEL = 'tiny-test';

beforeAll(async () => {
  server = await startServer(['--model-id', MODEL]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

describe('completions', () => {
  it('returns the whole script and stops at EOS', async () => {
    const res = await client.completions.create({ model: MODEL, prompt: 'Say hi', max_tokens: 50, temperature: 0 });
    expect(res.object).toBe('text_completion');
    expect(res.model).toBe(MODEL);
    expect(res.id).toMatch(/^cmpl-/);
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]!.text).toBe(TINY_SCRIPT_TEXT);
    expect(res.choices[0]!.finish_reason).toBe('stop');
    expect(res.choices[0]!.logprobs).toBeNull();
    expect(res.usage!.completion_tokens).toBe(TINY_SCRIPT_TOKENS);
    expect(res.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(res.usage!.total_tokens).toBe(res.usage!.prompt_tokens + res.usage!.completion_tokens);
  });

  it('accepts a prompt as an array of one string', async () => {
    const res = await client.completions.create({ model: MODEL, prompt: ['Say hi'], max_tokens: 50, temperature: 0 });
    expect(res.choices[0]!.text).toBe(TINY_SCRIPT_TEXT);
  });

  it('max_tokens ends with finish_reason "length"', async () => {
    const res = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2, temperature: 0 });
    expect(res.choices[0]!.text).toBe('Hello, world! ');
    expect(res.choices[0]!.finish_reason).toBe('length');
    expect(res.usage!.completion_tokens).toBe(2);
  });

  it('defaults to 16 tokens like OpenAI', async () => {
    const res = await client.completions.create({ model: MODEL, prompt: 'x', temperature: 0, ignore_eos: true } as never);
    expect(res.usage!.completion_tokens).toBe(16);
    expect(res.choices[0]!.finish_reason).toBe('length');
  });

  it('a stop sequence ends generation and is not included, also across tokens', async () => {
    const one = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 50, temperature: 0, stop: '世' });
    expect(one.choices[0]!.text).toBe('Hello, world! 你好，');
    expect(one.choices[0]!.finish_reason).toBe('stop');
    // "world! 你" spans three tokens (" world! ", a lead byte, its continuation).
    const span = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 50, temperature: 0, stop: ['zzz', 'world! 你'] });
    expect(span.choices[0]!.text).toBe('Hello, ');
    expect(span.choices[0]!.finish_reason).toBe('stop');
  });

  it('ignore_eos generates exactly max_tokens, past EOS', async () => {
    // Script (10 tokens) + EOS, twice, then 2 more tokens: 24.
    const res = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 24, temperature: 0, ignore_eos: true } as never);
    expect(res.choices[0]!.text).toBe(TINY_SCRIPT_TEXT + TINY_SCRIPT_TEXT + 'Hello, world! ');
    expect(res.usage!.completion_tokens).toBe(24);
    expect(res.choices[0]!.finish_reason).toBe('length');
  });

  it('streams text chunks that add up to the script, then [DONE]', async () => {
    const stream = await client.completions.create({
      model: MODEL,
      prompt: 'x',
      max_tokens: 50,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        finishes.push(c.finish_reason);
      }
    }
    expect(text).toBe(TINY_SCRIPT_TEXT);
    expect(finishes.at(-1)).toBe('stop');
    expect(finishes.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage!.completion_tokens).toBe(TINY_SCRIPT_TOKENS);
  });

  it('sampling fields are accepted (temperature, top_p, top_k, seed, penalties)', async () => {
    const res = await client.completions.create({
      model: MODEL,
      prompt: 'x',
      max_tokens: 5,
      temperature: 0.7,
      top_p: 0.9,
      seed: 42,
      presence_penalty: 0.5,
      frequency_penalty: 0.5,
      top_k: 40,
    } as never);
    expect(res.usage!.completion_tokens).toBeGreaterThan(0);
  });
});

describe('chat completions', () => {
  it('answers with the script', async () => {
    const res = await client.chat.completions.create({
      model: MODEL,
      temperature: 0,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
        { role: 'user', content: [{ type: 'text', text: 'Again' }] },
      ],
    });
    expect(res.object).toBe('chat.completion');
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.choices[0]!.message.role).toBe('assistant');
    expect(res.choices[0]!.message.content).toBe(TINY_SCRIPT_TEXT);
    expect(res.choices[0]!.finish_reason).toBe('stop');
    expect(res.usage!.completion_tokens).toBe(TINY_SCRIPT_TOKENS);
    // The rendered ChatML template has the role markers and all four messages.
    expect(res.usage!.prompt_tokens).toBeGreaterThan(10);
  });

  it('streams: role first, finish_reason last, then a usage chunk with no choices', async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      temperature: 0,
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage!.completion_tokens).toBe(TINY_SCRIPT_TOKENS);
    const last = chunks.at(-2)!;
    expect(last.choices[0]!.finish_reason).toBe('stop');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(TINY_SCRIPT_TEXT);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id)).toBe(true);
  });

  it('max_completion_tokens and max_tokens both limit the reply', async () => {
    const a = await client.chat.completions.create({
      model: MODEL,
      temperature: 0,
      messages: [{ role: 'user', content: 'Hi' }],
      max_completion_tokens: 1,
    });
    expect(a.choices[0]!.message.content).toBe('Hello,');
    expect(a.choices[0]!.finish_reason).toBe('length');
    const b = await client.chat.completions.create({
      model: MODEL,
      temperature: 0,
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 2,
    });
    expect(b.choices[0]!.message.content).toBe('Hello, world! ');
  });
});

describe('models and errors', () => {
  it('lists the model', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([MODEL]);
    const one = await client.models.retrieve(MODEL);
    expect(one.object).toBe('model');
    expect(one.owned_by).toBe('qwen-serve');
  });

  it('raises APIError with the right status, type, code and param', async () => {
    const unknownModel = await client.completions.create({ model: 'gpt-4', prompt: 'x' }).catch((e: unknown) => e);
    expect(unknownModel).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknownModel as APIError).code).toBe('model_not_found');

    const n0 = await client.completions.create({ model: MODEL, prompt: 'x', n: 0 }).catch((e: unknown) => e);
    expect(n0).toBeInstanceOf(OpenAI.BadRequestError);
    expect((n0 as APIError).param).toBe('n');
    expect((n0 as APIError).type).toBe('invalid_request_error');

    const huge = await client.chat.completions
      .create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 2048 })
      .catch((e: unknown) => e);
    expect(huge).toBeInstanceOf(OpenAI.BadRequestError);
    // The chat template's tokens plus 2048 do not fit the 2048-token context.
    expect((huge as APIError).code).toBe('context_length_exceeded');
    expect((huge as APIError).param).toBe('max_tokens');

    const missing = await client.models.retrieve('nope').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
  });
});
