/**
 * Routing as express does it (case-insensitive, one trailing slash, queries ignored), and everything that
 * depends on which route a request matched: bounded `endpoint` labels on the route templates in every
 * metric, 405 for a known route asked with another method (OPTIONS included, after auth), CORS preflights
 * answered only for allowed origins, and a 400 for a path whose %-escapes do not decode.
 */
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_ROUTES, type Route } from '../src/http/route-table.js';
import { API_ENDPOINTS } from '../src/metrics/definitions.js';
import { scrape, value, type Sample } from './helpers/prom.js';
import { rawRequest, type RawRequest } from './helpers/raw-http.js';
import { freePort, startServer, type TestServer } from './helpers/server.js';

const MODEL = 'routes-test';
const KEY = 'routes-key';
const ORIGIN = 'https://app.example';
const auth = { authorization: `Bearer ${KEY}` };
let server: TestServer;

beforeAll(async () => {
  server = await startServer(['--model-id', MODEL, '--api-key', KEY, '--cors-origin', ORIGIN, '--metrics-port', String(await freePort())]);
});
afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

/** A concrete path of a route (its `{…}` segments filled in). */
const pathOf = (r: Route) => r.template.replace('{id}', MODEL).replace('{name}', 'dashboard.js');
const send = (r: RawRequest) => rawRequest(server.url, { ...r, headers: { ...auth, ...r.headers } });

describe('every route of the table is served, and only with its methods', () => {
  it.each(API_ROUTES.map((r) => [r.template, r] as const))('%s', async (_t, route) => {
    for (const method of route.methods) {
      const res = await send({ method, path: pathOf(route), body: method === 'POST' ? {} : undefined });
      expect(res.body?.error?.code, `${method} ${route.template}`).not.toBe('unknown_route');
      expect(res.status, `${method} ${route.template}`).not.toBe(405);
    }
    const wrong = route.methods.includes('POST') ? 'GET' : 'POST';
    const res = await send({ method: wrong, path: pathOf(route) });
    expect(res.status, `${wrong} ${route.template}`).toBe(405);
    // Both error shapes (OpenAI's, Anthropic's on /v1/messages) carry the message.
    expect(res.body.error.message).toContain(`${wrong} ${route.template} is not allowed`);
    expect(res.headers.allow).toBe(route.methods.includes('GET') ? 'GET, HEAD' : 'POST');
  });
});

describe('endpoint labels are route templates', () => {
  let seed = 1;
  /** Deterministic pseudo-random numbers, so a failure can be replayed. */
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const scramble = (path: string) => [...path].map((c) => (random() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('');
  /** The same route as express sees it: other case, a trailing slash, a query string. */
  const variants = (path: string) => [
    path,
    scramble(path),
    `${scramble(path)}/`,
    `${path}?q=${Math.floor(random() * 1e9)}`,
    `${scramble(path)}/?a=b&c=${Math.floor(random() * 1e9)}`,
  ];
  const GENERATION = ['/v1/completions', '/v1/chat/completions', '/v1/responses', '/v1/messages', '/v1/embeddings'];
  const counted = API_ROUTES.filter((r) => r.label !== undefined);

  /** One round of traffic; returns what each (method, endpoint) label should have counted. */
  async function round(agent: http.Agent): Promise<{ expected: Map<string, number>; invalid: number; logprobs: number }> {
    const expected = new Map<string, number>();
    const count = (method: string, endpoint: string) =>
      expected.set(`${method} ${endpoint}`, (expected.get(`${method} ${endpoint}`) ?? 0) + 1);
    const requests: RawRequest[] = [];
    let invalid = 0;
    let logprobs = 0;
    for (const route of counted) {
      const method = route.methods[0]!;
      for (const path of variants(pathOf(route))) {
        requests.push({ method, path, body: method === 'POST' ? {} : undefined });
        count(method, route.template);
        if (GENERATION.includes(route.template)) invalid++;
        // The wrong method: a 405, still under the route's own label.
        requests.push({ method: method === 'GET' ? 'DELETE' : 'GET', path });
        count(method === 'GET' ? 'DELETE' : 'GET', route.template);
      }
    }
    // Requests that pass validation count their features under the template too.
    for (const path of variants('/v1/chat/completions')) {
      requests.push({ method: 'POST', path, body: { messages: [{ role: 'user', content: 'x' }], max_tokens: 1, logprobs: true } });
      count('POST', '/v1/chat/completions');
      logprobs++;
    }
    // Probes and scrapes in any spelling are not API requests.
    for (const path of [...variants('/health'), ...variants('/metrics')]) requests.push({ path });
    for (let i = 0; i < 200; i++) {
      const method = ['GET', 'POST', 'PUT', 'PATCH'][i % 4]!;
      requests.push({
        method,
        path: `/${scramble('v1')}/${Math.floor(random() * 1e12).toString(36)}/x${i}`,
        body: method === 'GET' ? undefined : {},
      });
      count(method, 'other');
    }
    // Near misses of real routes: a second trailing slash, a path under a route.
    for (const path of ['/v1/models//', '/v1/chat/completions//', '/V1/COMPLETIONS/extra', '/tokenize/x']) {
      requests.push({ method: 'POST', path, body: {} });
      count('POST', 'other');
    }
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < requests.length) {
          const r = requests[next++]!;
          const res = await send({ ...r, agent });
          expect(res.status, `${r.method} ${r.path}`).toBeLessThan(500);
        }
      }),
    );
    return { expected, invalid, logprobs };
  }

  const qwenSeries = (s: Sample[]) => s.filter((x) => x.name.startsWith('qwen_'));

  it('case, slash and query variants of every route (and random paths) add no series and count under the templates', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    // The first round creates the series a round of this traffic needs (methods per route, `other`).
    await round(agent);
    const before = await scrape(server.metricsUrl!);
    for (const s of before.filter((x) => x.labels.endpoint !== undefined)) {
      expect([...API_ENDPOINTS, 'other'], `${s.name} ${JSON.stringify(s.labels)}`).toContain(s.labels.endpoint);
    }
    const { expected, invalid, logprobs } = await round(agent);
    agent.destroy();
    const after = await scrape(server.metricsUrl!);

    expect(qwenSeries(after).length).toBe(qwenSeries(before).length);
    const delta = (name: string, labels: Record<string, string>) => value(after, name, labels) - value(before, name, labels);
    for (const [key, n] of expected) {
      const [method, endpoint] = key.split(' ') as [string, string];
      expect(delta('qwen_inference_request_total', { method, endpoint }), key).toBe(n);
      expect(delta('qwen_inference_duration_seconds_count', { method, endpoint }), key).toBe(n);
    }
    const total = (s: Sample[]) => s.filter((x) => x.name === 'qwen_inference_request_total').reduce((sum, x) => sum + x.value, 0);
    expect(total(after) - total(before)).toBe([...expected.values()].reduce((a, b) => a + b, 0));
    expect(delta('qwen_requests_rejected_total', { model: MODEL, reason: 'invalid' })).toBe(invalid);
    expect(delta('qwen_feature_requests_total', { model: MODEL, endpoint: '/v1/chat/completions', feature: 'logprobs' })).toBe(logprobs);
  });
});

describe('OPTIONS and other methods', () => {
  const preflight = (origin: string | undefined, method: string | undefined, path = '/v1/chat/completions') =>
    rawRequest(server.url, {
      method: 'OPTIONS',
      path,
      headers: {
        ...(origin && { origin }),
        ...(method && { 'access-control-request-method': method }),
        'access-control-request-headers': 'authorization,content-type',
      },
    });

  it('a preflight from an allowed origin is a 204 with CORS headers and needs no key', async () => {
    const res = await preflight(ORIGIN, 'POST');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(res.headers['access-control-allow-methods']).toBe('POST');
    expect(res.headers['access-control-allow-headers']).toBe('authorization,content-type');
    expect(res.headers['access-control-max-age']).toBe('600');
    const models = await preflight(ORIGIN, 'GET', '/V1/Models/');
    expect([models.status, models.headers['access-control-allow-methods']]).toEqual([204, 'GET,HEAD']);
  });

  it.each([
    ['another origin', 'https://evil.example', 'POST'],
    ['no origin', undefined, 'POST'],
    ['no Access-Control-Request-Method', ORIGIN, undefined],
  ])('OPTIONS with %s is an ordinary request: 401 without the key, 405 with it', async (_name, origin, method) => {
    const res = await preflight(origin, method);
    expect([res.status, res.body.error.code]).toEqual([401, 'invalid_api_key']);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const keyed = await send({ method: 'OPTIONS', path: '/v1/chat/completions', headers: { ...(origin && { origin }) } });
    expect([keyed.status, keyed.body.error.code]).toEqual([405, 'method_not_allowed']);
    expect(keyed.body.error.message).toBe('OPTIONS /v1/chat/completions is not allowed: this route answers POST.');
    expect(keyed.headers.allow).toBe('POST');
  });

  it('OPTIONS on an unknown path is a 404; on /health (open) a 405 without a key', async () => {
    expect((await send({ method: 'OPTIONS', path: '/v1/nothing' })).status).toBe(404);
    const health = await rawRequest(server.url, { method: 'OPTIONS', path: '/health' });
    expect([health.status, health.headers.allow]).toEqual([405, 'GET, HEAD']);
  });

  it('wrong methods are 405s in the OpenAI shape, and the official client reads them', async () => {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const err = await client.get('/chat/completions').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(405);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('method_not_allowed');
    const del = await send({ method: 'DELETE', path: '/v1/models' });
    expect([del.status, del.body.error.message]).toEqual([405, 'DELETE /v1/models is not allowed: this route answers GET, HEAD.']);
    // HEAD is answered wherever GET is.
    expect((await send({ method: 'HEAD', path: '/v1/models' })).status).toBe(200);
  });

  it('every response carries an x-request-id', async () => {
    const a = await send({ path: '/v1/models' });
    const b = await send({ path: '/nothing' });
    expect(a.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.headers['x-request-id']).not.toBe(a.headers['x-request-id']);
  });
});

describe('paths', () => {
  it.each(['/v1/models/%E0%A4%A', '/v1/models/%ZZ', '/V1/MODELS/%/', '/dashboard/assets/%E0'])('%s is a 400 invalid_path', async (path) => {
    const res = await send({ path });
    expect([res.status, res.body.error.code]).toEqual([400, 'invalid_path']);
    expect(res.body.error.message).toContain('not valid percent-encoding');
  });

  it('a valid escape decodes as usual', async () => {
    const res = await send({ path: `/v1/models/${encodeURIComponent(MODEL).replace('-', '%2D')}` });
    expect([res.status, res.body.id]).toEqual([200, MODEL]);
  });
});
