/**
 * Bad input never crashes and never gets a 5xx: each case is the right 4xx in the OpenAI error shape
 * and names the offending field where there is one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startServer, type TestServer } from './helpers/server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startServer(['--context-size', '256', '--body-limit', '65536']);
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

function expectError(res: { status: number; body: any }, status: number, param?: string | null, code?: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(Object.keys(res.body)).toEqual(['error']);
  expect(typeof res.body.error.message).toBe('string');
  expect(res.body.error.message.length).toBeGreaterThan(5);
  expect(typeof res.body.error.type).toBe('string');
  expect(res.body.error).toHaveProperty('param');
  expect(res.body.error).toHaveProperty('code');
  if (param !== undefined) expect(res.body.error.param).toBe(param);
  if (code !== undefined) expect(res.body.error.code).toBe(code);
}

const completions = () => `${server.url}/v1/completions`;
const chat = () => `${server.url}/v1/chat/completions`;

describe('schema violations are 400 naming the field', () => {
  it.each([
    ['prompt missing', {}, 'prompt'],
    ['prompt of wrong type', { prompt: 5 }, 'prompt'],
    ['an empty prompt array', { prompt: [] }, 'prompt'],
    ['a negative token id', { prompt: [1, -2] }, 'prompt.1'],
    ['mixed prompt kinds', { prompt: ['a', 1] }, 'prompt'],
    ['n=17', { prompt: 'x', n: 17 }, 'n'],
    ['more than 16 choices', { prompt: ['a', 'b', 'c', 'd', 'e'], n: 4 }, 'prompt'],
    ['echo with suffix', { prompt: 'x', echo: true, suffix: 'y' }, 'echo'],
    ['echo with logprobs', { prompt: 'x', echo: true, logprobs: 1 }, 'echo'],
    ['negative max_tokens', { prompt: 'x', max_tokens: -1 }, 'max_tokens'],
    ['zero max_tokens', { prompt: 'x', max_tokens: 0 }, 'max_tokens'],
    ['fractional max_tokens', { prompt: 'x', max_tokens: 1.5 }, 'max_tokens'],
    ['string temperature', { prompt: 'x', temperature: 'hot' }, 'temperature'],
    ['temperature out of range', { prompt: 'x', temperature: 7 }, 'temperature'],
    ['top_p zero', { prompt: 'x', top_p: 0 }, 'top_p'],
    ['stop of wrong type', { prompt: 'x', stop: 3 }, 'stop'],
    ['five stop sequences', { prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    ['stream not boolean', { prompt: 'x', stream: 'yes' }, 'stream'],
    ['seed not integer', { prompt: 'x', seed: 1.5 }, 'seed'],
  ])('completions: %s', async (_name, body, param) => {
    expectError(await postJson(completions(), body), 400, param);
  });

  it.each([
    ['messages missing', {}, 'messages'],
    ['messages empty', { messages: [] }, 'messages'],
    ['messages not an array', { messages: 'hi' }, 'messages'],
    ['unknown role', { messages: [{ role: 'wizard', content: 'x' }] }, 'messages.0.role'],
    ['content of wrong type', { messages: [{ role: 'user', content: 42 }] }, 'messages.0.content'],
    [
      'image content part',
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
      'messages.0.content.0.type',
    ],
    ['unknown content part', { messages: [{ role: 'user', content: [{ type: 'hologram' }] }] }, 'messages.0.content'],
    ['n=0', { messages: [{ role: 'user', content: 'x' }], n: 0 }, 'n'],
  ])('chat: %s', async (_name, body, param) => {
    expectError(await postJson(chat(), body), 400, param);
  });
});

describe('body problems', () => {
  it('malformed JSON is a 400', async () => {
    expectError(await postJson(completions(), '{"prompt": "x",'), 400, null, 'invalid_json');
  });

  it('a JSON array or scalar body is a 400', async () => {
    expectError(await postJson(completions(), '[1,2]'), 400, null, 'invalid_body');
    expectError(await postJson(completions(), '"x"'), 400, null, 'invalid_body');
  });

  it('a body that is not JSON is a 400', async () => {
    const res = await fetch(completions(), { method: 'POST', body: 'prompt=x', headers: { 'content-type': 'text/plain' } });
    expectError({ status: res.status, body: await res.json() }, 400, null, 'invalid_body');
  });

  it('an oversized body is a 413', async () => {
    expectError(await postJson(completions(), { prompt: 'x'.repeat(100_000) }), 413, null, 'payload_too_large');
  });
});

describe('context limits', () => {
  it('a prompt longer than the context is a 400 that states the limits', async () => {
    const res = await postJson(completions(), { prompt: 'hello world '.repeat(300) });
    expectError(res, 400, 'prompt', 'context_length_exceeded');
    expect(res.body.error.message).toContain('256');
  });

  it('a chat prompt longer than the context is a 400 on messages', async () => {
    const res = await postJson(chat(), { messages: [{ role: 'user', content: 'hello world '.repeat(300) }] });
    expectError(res, 400, 'messages', 'context_length_exceeded');
  });

  it('prompt + max_tokens beyond the context is a 400 naming max_tokens', async () => {
    const res = await postJson(completions(), { prompt: 'hello world '.repeat(10), max_tokens: 250 });
    expectError(res, 400, 'max_tokens', 'context_length_exceeded');
    expect(res.body.error.message).toMatch(/at most \d+/);
  });

  it('a huge max_tokens is a 400 naming the limit (the context size by default)', async () => {
    const res = await postJson(completions(), { prompt: 'x', max_tokens: 1_000_000_000_000 });
    expectError(res, 400, 'max_tokens', 'invalid_value');
    expect(res.body.error.message).toContain('--max-tokens-limit');
  });

  it('a streamed request whose prompt does not fit still gets a plain 400, not a stream', async () => {
    const res = await postJson(completions(), { prompt: 'hello world '.repeat(300), stream: true });
    expectError(res, 400, 'prompt', 'context_length_exceeded');
  });

  it('chat without max_tokens generates up to the end of the context', async () => {
    // The prompt leaves some room for the reply, which fills the context and stops at "length".
    const content = 'hello world '.repeat(30);
    const fits = await postJson(chat(), { messages: [{ role: 'user', content }], temperature: 0, ignore_eos: true });
    expect(fits.status, JSON.stringify(fits.body)).toBe(200);
    expect(fits.body.choices[0].finish_reason).toBe('length');
    expect(fits.body.usage.total_tokens).toBe(256);
  });
});

describe('routes and models', () => {
  it('an unknown route is a 404 in the error shape', async () => {
    const res = await fetch(`${server.url}/v2/nothing`);
    expectError({ status: res.status, body: await res.json() }, 404, null, 'unknown_route');
  });

  it('an unknown model is a 404 naming model', async () => {
    expectError(await postJson(completions(), { model: 'gpt-4', prompt: 'x' }), 404, 'model', 'model_not_found');
  });

  it('unknown extra fields are ignored', async () => {
    const res = await postJson(completions(), { prompt: 'x', max_tokens: 2, temperature: 0, foo: { bar: [1] }, logit_bias: {} });
    expect(res.status).toBe(200);
    expect(res.body.choices[0].text).toBe('Hello, world! ');
  });

  it('an empty prompt is served (from BOS)', async () => {
    const res = await postJson(completions(), { prompt: '', max_tokens: 2, temperature: 0 });
    expect(res.status).toBe(200);
    expect(res.body.usage.prompt_tokens).toBe(1);
  });

  it('the server is still healthy and nothing was a 5xx', async () => {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
    expect(server.proc.exitCode).toBeNull();
  });
});
