/**
 * The Anthropic Messages API (/v1/messages, /v1/messages/count_tokens) through the Anthropic SDK, with
 * x-api-key auth: text, streaming, stop sequences, tool use and results, token counting, errors in
 * Anthropic's shape, and metrics under its own endpoint label.
 */
import Anthropic from '@anthropic-ai/sdk';
import { beforeAll, describe, expect, it } from 'vitest';
import { TINY_SCRIPT_TEXT, TINY_SCRIPT_TOKENS } from '../src/demo-model/demo-model.js';
import { useClientServer } from './helpers/client.js';
import { scrape, value } from './helpers/prom.js';

const MODEL = 'anthropic-test';
const KEY = 'anthropic-key';
const ctx = useClientServer(MODEL, ['--api-key', KEY]);
let client: Anthropic;
beforeAll(() => {
  client = new Anthropic({ baseURL: ctx.server.url, apiKey: KEY, maxRetries: 0 });
});

const messages = [{ role: 'user' as const, content: 'Hi' }];
const tool = {
  name: 'lookup',
  description: 'Look up',
  input_schema: { type: 'object' as const, properties: { q: { type: 'string', maxLength: 8 } }, required: ['q'] },
};

describe('POST /v1/messages', () => {
  it('answers a message with a text block, stop_reason end_turn and usage', async () => {
    const m = await client.messages.create({ model: MODEL, max_tokens: 50, system: 'Be brief.', messages });
    expect(m.type).toBe('message');
    expect(m.role).toBe('assistant');
    expect(m.content).toEqual([{ type: 'text', text: TINY_SCRIPT_TEXT }]);
    expect(m.stop_reason).toBe('end_turn');
    expect(m.usage.output_tokens).toBe(TINY_SCRIPT_TOKENS);
  });

  it('max_tokens and stop_sequences set the stop reason', async () => {
    const cut = await client.messages.create({ model: MODEL, max_tokens: 2, messages });
    expect(cut.stop_reason).toBe('max_tokens');
    const stopped = await client.messages.create({
      model: MODEL,
      max_tokens: 50,
      messages,

      stop_sequences: ['zzz', 'world'],
    });
    expect([stopped.stop_reason, stopped.stop_sequence]).toEqual(['stop_sequence', 'world']);
    expect(stopped.content).toEqual([{ type: 'text', text: 'Hello, ' }]);
  });

  it("streams Anthropic's events; the SDK's stream helper assembles the same message", async () => {
    const whole = await client.messages.create({ model: MODEL, max_tokens: 50, messages });
    const stream = client.messages.stream({ model: MODEL, max_tokens: 50, messages });
    let text = '';
    stream.on('text', (t) => (text += t));
    const final = await stream.finalMessage();
    expect(text).toBe(TINY_SCRIPT_TEXT);
    expect(final.content).toEqual(whole.content);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(TINY_SCRIPT_TOKENS);
    const raw = await client.messages.create({ model: MODEL, max_tokens: 50, messages, stream: true });
    const types: string[] = [];
    for await (const e of raw) types.push(e.type);
    expect(types.filter((t, i) => t !== types[i - 1])).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
  });

  it('tool_choice any: a tool_use block with input of the schema; streamed the same', async () => {
    const params = {
      model: MODEL,
      max_tokens: 100,
      messages,

      tools: [tool],
      tool_choice: { type: 'any' as const, disable_parallel_tool_use: true },
      top_k: 1,
    };
    const m = await client.messages.create(params);
    expect(m.stop_reason).toBe('tool_use');
    const use = m.content.find((b) => b.type === 'tool_use');
    expect(use?.type === 'tool_use' && use.name).toBe('lookup');
    expect(typeof (use as { input: { q: unknown } }).input.q).toBe('string');
    const final = await client.messages.stream(params).finalMessage();
    expect((final.content.find((b) => b.type === 'tool_use') as { input: unknown }).input).toEqual((use as { input: unknown }).input);
  });

  it('tool_use and tool_result blocks in the history are the conversation; count_tokens counts it', async () => {
    const history = (result: string) => [
      { role: 'user' as const, content: 'Look up cats' },
      { role: 'assistant' as const, content: [{ type: 'tool_use' as const, id: 'toolu_1', name: 'lookup', input: { q: 'cats' } }] },
      { role: 'user' as const, content: [{ type: 'tool_result' as const, tool_use_id: 'toolu_1', content: result }] },
    ];
    const m = await client.messages.create({ model: MODEL, max_tokens: 50, messages: history('mammals'), tools: [tool] });
    expect(m.content).toEqual([{ type: 'text', text: TINY_SCRIPT_TEXT }]);
    const counted = await client.messages.countTokens({ model: MODEL, messages: history('mammals'), tools: [tool] });
    expect(counted.input_tokens).toBe(m.usage.input_tokens);
    const longer = await client.messages.countTokens({ model: MODEL, messages: history('mammals '.repeat(10)), tools: [tool] });
    expect(longer.input_tokens).toBeGreaterThan(counted.input_tokens + 5);
  });

  it("errors come in Anthropic's shape, with the SDK's error classes", async () => {
    const missing = await client.messages.create({ model: MODEL, messages } as never).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(Anthropic.BadRequestError);
    expect((missing as { error: unknown }).error).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'max_tokens: is required' },
    });
    const other = await client.messages.create({ model: 'claude-x', max_tokens: 5, messages }).catch((e: unknown) => e);
    expect(other).toBeInstanceOf(Anthropic.NotFoundError);
    const bad = await new Anthropic({ baseURL: ctx.server.url, apiKey: 'wrong', maxRetries: 0 }).messages
      .create({ model: MODEL, max_tokens: 5, messages })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(Anthropic.AuthenticationError);
    const orphan = await client.messages
      .create({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'nope', content: 'x' }] }],
      })
      .catch((e: unknown) => e);
    expect((orphan as { error: { error: { message: string } } }).error.error.message).toMatch(/^messages\.0\.content\.0\.tool_use_id: /);
  });

  it("the route's dialect decides the error shape: before any route runs too, and in the dialect's own field names", async () => {
    const post = async (path: string, body: string) => {
      const res = await fetch(`${ctx.server.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': KEY },
        body,
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    // The body parser fails before the router: the route (case and slash variants included) still decides.
    const broken = await post('/V1/Messages/', '{"model":');
    expect(broken.status).toBe(400);
    expect(broken.body).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'The request body is not valid JSON.' },
    });
    const schema = await post(
      '/v1/messages/count_tokens',
      JSON.stringify({ messages, tools: [{ ...tool, input_schema: { type: 'string' } }], tool_choice: { type: 'tool', name: 'lookup' } }),
    );
    expect(schema.body).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: "tools.0.input_schema: must be a schema of type 'object'" },
    });
    const unknownTool = await post(
      '/v1/messages',
      JSON.stringify({ max_tokens: 5, messages, tools: [tool], tool_choice: { type: 'tool', name: 'nope' } }),
    );
    expect(unknownTool.body).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: "tool_choice.name: no tool is named 'nope'" },
    });
    const any = await post('/v1/messages', JSON.stringify({ max_tokens: 5, messages, tool_choice: { type: 'any' } }));
    expect(any.body).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: "tool_choice: 'any' needs tools" } });
    // A path no route has, under the Messages API (the SDK's batches): Anthropic's 404.
    const batches = await post('/v1/Messages/batches', '{}');
    expect(batches.status).toBe(404);
    expect(batches.body).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    // The same fault on an OpenAI route: OpenAI's shape.
    const openai = await post('/v1/chat/completions', '{"model":');
    expect(openai.body).toEqual({
      error: { message: 'The request body is not valid JSON.', type: 'invalid_request_error', param: null, code: 'invalid_json' },
    });
  });

  it('is counted under its own endpoint labels', async () => {
    const read = async (endpoint: string) =>
      value(await scrape(ctx.server.metricsUrl ?? ctx.server.url), 'qwen_inference_request_total', { endpoint });
    const before = [await read('/v1/messages'), await read('/v1/messages/count_tokens')];
    await client.messages.create({ model: MODEL, max_tokens: 5, messages });
    await client.messages.countTokens({ model: MODEL, messages });
    expect([(await read('/v1/messages')) - before[0]!, (await read('/v1/messages/count_tokens')) - before[1]!]).toEqual([1, 1]);
  });
});
