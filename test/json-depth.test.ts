/**
 * --max-json-depth: JSON nested 100k levels deep, in the body (tool parameters, Anthropic tool_use input)
 * or in a JSON string the server parses (chat tool_calls arguments, Responses function_call arguments), is
 * a fast 400 naming the field and the limit on every endpoint, instead of a stack overflow that reached
 * clients as a 5xx. Objects this deep cannot even be serialized by a client library (JSON.stringify
 * recurses), so those bodies are written by hand; the official clients send the deep JSON strings.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tooDeep } from '../src/http/middleware/json-depth.js';
import { postJson, startServer, type TestServer } from './helpers/server.js';

const MODEL = 'depth-test';
const DEEP = 100_000;
const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
const deepArray = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const LIMIT_MESSAGE = /JSON nested deeper than 64 levels of arrays and objects \(--max-json-depth\)/;

let server: TestServer;
let openai: OpenAI;
let anthropic: Anthropic;
beforeAll(async () => {
  server = await startServer(['--model-id', MODEL]);
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: server.url, apiKey: 'x', maxRetries: 0 });
});
afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

/** Posts a hand-written body; the answer must come fast. */
async function post(path: string, body: string) {
  const started = performance.now();
  const res = await postJson(`${server.url}${path}`, body);
  expect(performance.now() - started, `${path} took too long`).toBeLessThan(3_000);
  return res;
}

const user = { role: 'user', content: 'Weather?' };
const tool = (parameters: string) => `[{"type":"function","function":{"name":"f","parameters":${parameters}}}]`;

describe('the scan', () => {
  it('finds the first container beyond the limit, iteratively', () => {
    expect(tooDeep(JSON.parse(deepArray(DEEP)), 64)).toHaveLength(64);
    // The body is level 1, `a` level 2, a[1] level 3, a[1].b level 4.
    expect(tooDeep({ a: [1, { b: {} }] }, 4)).toBeUndefined();
    expect(tooDeep({ a: [1, { b: {} }] }, 3)).toEqual(['a', 1, 'b']);
    expect(tooDeep({ a: [1, { b: {} }] }, 2)).toEqual(['a', 1]);
    expect(tooDeep('not a container', 1)).toBeUndefined();
  });
});

describe('bodies nested too deep', () => {
  it.each([
    [
      'chat tool parameters',
      '/v1/chat/completions',
      `{"messages":[${JSON.stringify(user)}],"tools":${tool(deepObject(DEEP))}}`,
      'tools.0.function.parameters.a.a.a.a…',
    ],
    [
      'Responses tool parameters',
      '/v1/responses',
      `{"input":"x","tools":[{"type":"function","name":"f","parameters":${deepObject(DEEP)}}]}`,
      'tools.0.parameters.a.a.a.a.a…',
    ],
    ['an unknown field', '/v1/completions', `{"prompt":"x","extra":${deepArray(DEEP)}}`, 'extra.0.0.0.0.0.0.0…'],
    ['tokenize messages', '/tokenize', `{"messages":[{"role":"user","content":${deepArray(DEEP)}}]}`, 'messages.0.content.0.0.0.0.0…'],
  ])('%s: a 400 naming the field and the limit', async (_name, path, body, param) => {
    const res = await post(path, body);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'json_too_deep', param, type: 'invalid_request_error' });
    expect(res.body.error.message).toMatch(LIMIT_MESSAGE);
  });

  it.each([
    ['/v1/messages', `"max_tokens":5,`],
    ['/v1/messages/count_tokens', ''],
  ])("Anthropic tool_use input on %s: a 400 in Anthropic's shape", async (path, extra) => {
    const history = `[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":${deepObject(DEEP)}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]`;
    const res = await post(path, `{${extra}"messages":${history}}`);
    expect(res.status).toBe(400);
    expect(res.body.type).toBe('error');
    expect(res.body.error.type).toBe('invalid_request_error');
    expect(res.body.error.message).toMatch(/^messages\.1\.content\.0\.input\.a\.a\.a…: /);
    expect(res.body.error.message).toMatch(LIMIT_MESSAGE);
  });

  it('the limit counts every level of the body: 64 is served, 65 is not', async () => {
    const at = await post('/tokenize', `{"content":"x","extra":${deepArray(63)}}`);
    expect(at.status).toBe(200);
    const beyond = await post('/tokenize', `{"content":"x","extra":${deepArray(64)}}`);
    expect([beyond.status, beyond.body.error.code]).toEqual([400, 'json_too_deep']);
  });
});

describe('JSON strings nested too deep', () => {
  const call = (args: string) => [
    { role: 'user' as const, content: 'Weather?' },
    {
      role: 'assistant' as const,
      content: null,
      tool_calls: [{ id: 'c1', type: 'function' as const, function: { name: 'f', arguments: args } }],
    },
    { role: 'tool' as const, tool_call_id: 'c1', content: 'sunny' },
  ];

  it('chat tool_calls arguments, through the official client', async () => {
    const started = performance.now();
    const err = await openai.chat.completions
      .create({ model: MODEL, messages: call(deepArray(DEEP)), max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect([e.code, e.param]).toEqual(['json_too_deep', 'messages.1.tool_calls.0.function.arguments']);
    expect(e.message).toMatch(LIMIT_MESSAGE);
  });

  it('Responses function_call arguments, through the official client', async () => {
    const err = await openai.responses
      .create({
        model: MODEL,
        input: [
          { role: 'user', content: 'Weather?' },
          { type: 'function_call', call_id: 'c1', name: 'f', arguments: deepObject(DEEP) },
          { type: 'function_call_output', call_id: 'c1', output: 'sunny' },
        ],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('input.1.arguments');
  });

  it('tokenize renders chat messages: the same 400', async () => {
    const res = await post('/tokenize', JSON.stringify({ messages: call(deepArray(DEEP)) }));
    expect([res.status, res.body.error.code, res.body.error.param]).toEqual([
      400,
      'json_too_deep',
      'messages.1.tool_calls.0.function.arguments',
    ]);
  });

  it('arguments within the limit are served', async () => {
    const r = await openai.chat.completions.create({ model: MODEL, messages: call(deepArray(60)), max_tokens: 2 });
    expect(r.choices[0]!.message.content).toBeDefined();
  });
});

describe('after all that', () => {
  it('Anthropic count_tokens still counts, and the server is healthy', async () => {
    const counted = await anthropic.messages.countTokens({ model: MODEL, messages: [{ role: 'user', content: 'x' }] });
    expect(counted.input_tokens).toBeGreaterThan(0);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect(server.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });
});
