/**
 * Auth on every route (401 in the OpenAI shape, /health open, /metrics open unless --metrics-auth, the
 * key never logged), operator input limits named in the error, and CORS only when asked for.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrape, value } from './helpers/prom.js';
import { freePort, postJson, startServer, type TestServer } from './helpers/server.js';

const KEY = 'sk-test-0123456789abcdef-SECRET';
const FILE_KEY = 'sk-from-file-XYZ-SECRET';

describe('auth', () => {
  let server: TestServer;
  let keyFile: string;

  beforeAll(async () => {
    keyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-keys-')), 'keys');
    fs.writeFileSync(keyFile, `# operators\n\n${FILE_KEY}\n`);
    server = await startServer([
      '--api-key',
      KEY,
      '--api-key-file',
      keyFile,
      '--metrics-port',
      String(await freePort()),
      '--log-level',
      'debug',
    ]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  const routes: [string, string, unknown?][] = [
    ['POST', '/v1/completions', { prompt: 'x', max_tokens: 2 }],
    ['POST', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 2 }],
    ['GET', '/v1/models'],
    ['GET', '/v1/models/tiny'],
    ['GET', '/v2/unknown'],
  ];

  it.each(routes)('%s %s needs a key: 401 without, 401 with a wrong one', async (method, route, body) => {
    for (const auth of [undefined, 'Bearer wrong-key', `Basic ${KEY}`, `Bearer ${KEY}x`, `Bearer ${KEY.slice(0, -1)}`]) {
      const res = await fetch(`${server.url}${route}`, {
        method,
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      expect(res.status, `${route} with ${auth}`).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      const err = (await res.json()) as { error: { type: string; code: string; message: string; param: null } };
      expect(err.error.code).toBe('invalid_api_key');
      expect(err.error.type).toBe('invalid_request_error');
      expect(err.error).toHaveProperty('param', null);
    }
  });

  it('either key works, with the openai client too', async () => {
    for (const key of [KEY, FILE_KEY]) {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 });
      const r = await client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 2, temperature: 0 });
      expect(r.choices[0]!.text).toBe('Hello, world! ');
    }
    const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'nope', maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('/health and /metrics stay open; refusals are counted', async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const s = await scrape(server.url);
    expect(value(s, 'qwen_requests_rejected_total', { reason: 'unauthorized' })).toBeGreaterThanOrEqual(routes.length * 5);
    expect((await fetch(`${server.metricsUrl}/metrics`)).status).toBe(200);
  });

  it('the keys never appear in the logs', () => {
    const text = JSON.stringify(server.logs) + server.stderr();
    expect(server.logs.length).toBeGreaterThan(10);
    expect(text).not.toContain('SECRET');
  });
});

describe('--metrics-auth', () => {
  it('protects /metrics on both ports, and /health stays open', async () => {
    const server = await startServer(['--api-key', KEY, '--metrics-auth', '--metrics-port', String(await freePort())]);
    try {
      for (const url of [server.url, server.metricsUrl!]) {
        expect((await fetch(`${url}/metrics`)).status).toBe(401);
        const ok = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
        expect(ok.status).toBe(200);
        expect(await ok.text()).toContain('qwen_inference_request_total');
      }
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

describe('input limits and CORS', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer([
      '--max-tokens-limit',
      '32',
      '--max-messages',
      '3',
      '--max-stop',
      '2',
      '--cors-origin',
      'https://app.example',
    ]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it.each([
    ['/v1/completions', { prompt: 'x', max_tokens: 33 }, 'max_tokens', '--max-tokens-limit'],
    [
      '/v1/chat/completions',
      { messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 33 },
      'max_completion_tokens',
      '--max-tokens-limit',
    ],
    ['/v1/chat/completions', { messages: Array(4).fill({ role: 'user', content: 'x' }) }, 'messages', '--max-messages'],
    ['/v1/completions', { prompt: 'x', stop: ['a', 'b', 'c'] }, 'stop', '--max-stop'],
  ])('%s %j is a 400 naming the limit', async (route, body, param, flag) => {
    const res = await postJson(`${server.url}${route}`, body);
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe(param);
    expect(res.body.error.message).toContain(flag);
  });

  it('requests within the limits are served', async () => {
    expect((await postJson(`${server.url}/v1/completions`, { prompt: 'x', max_tokens: 32, stop: ['a', 'b'] })).status).toBe(200);
    const three = Array(3).fill({ role: 'user', content: 'x' });
    expect((await postJson(`${server.url}/v1/chat/completions`, { messages: three, max_tokens: 2 })).status).toBe(200);
  });

  it('CORS answers only the configured origin', async () => {
    const preflight = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const other = await fetch(`${server.url}/v1/models`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('without --cors-origin there are no CORS headers', async () => {
    const plain = await startServer();
    try {
      const res = await fetch(`${plain.url}/v1/models`, { headers: { origin: 'https://app.example' } });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await plain.stop();
    }
  });
});
