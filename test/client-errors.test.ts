/**
 * Requests Node's HTTP parser refuses (a malformed request line or header, headers over 16 KB, headers
 * that never finish) get a JSON body in the OpenAI error shape with the right status and Connection: close,
 * on both ports; they are counted, and logged at debug level only; a response under way is never written
 * into.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerClientErrors } from '../src/http/middleware/client-errors.js';
import { scrape, value } from './helpers/prom.js';
import { parseRawResponse, rawExchange } from './helpers/raw-http.js';
import { freePort, startServer, type TestServer } from './helpers/server.js';

const BIG_HEADER = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`;
const CASES: [string, string, number, string][] = [
  ['a malformed request line', 'GARBAGE\r\n\r\n', 400, 'bad_request'],
  ['an invalid header name', 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n', 400, 'bad_request'],
  ['a non-numeric Content-Length', 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n', 400, 'bad_request'],
  ['a control character in a header value', 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x01b\r\n\r\n', 400, 'bad_request'],
  ['headers over 16 KB', BIG_HEADER, 431, 'headers_too_large'],
];

function expectJsonError(text: string, status: number, code: string) {
  const res = parseRawResponse(text);
  expect(res.status, text.slice(0, 200)).toBe(status);
  expect(res.headers.connection).toBe('close');
  expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
  const body = JSON.parse(res.body) as { error: { code: string; type: string; message: string; param: null } };
  expect(body.error).toMatchObject({ code, type: 'invalid_request_error', param: null });
  expect(body.error.message.length).toBeGreaterThan(10);
}

describe('the real server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(['--metrics-port', String(await freePort()), '--log-level', 'debug']);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it.each(CASES)('%s is answered in JSON and the connection closed, on both ports', async (_name, bytes, status, code) => {
    for (const url of [server.url, server.metricsUrl!]) {
      const { text, closed } = await rawExchange(url, bytes);
      expect(closed).toBe(true);
      expectJsonError(text, status, code);
    }
  });

  it('a flood of them is counted, logged at debug level only, and the server keeps serving', async () => {
    const before = await scrape(server.url);
    await Promise.all(Array.from({ length: 100 }, (_, i) => rawExchange(server.url, i % 2 ? 'NOPE\r\n\r\n' : BIG_HEADER)));
    const after = await scrape(server.url);
    const delta = (code: string) =>
      value(after, 'qwen_http_client_errors_total', { code }) - value(before, 'qwen_http_client_errors_total', { code });
    expect([delta('bad_request'), delta('headers_too_large'), delta('client_timeout')]).toEqual([50, 50, 0]);
    const lines = server.logs.filter((l) => l.msg === 'refused a request Node could not parse');
    expect(lines.length).toBeGreaterThanOrEqual(100);
    expect(lines.every((l) => l.level === 20)).toBe(true);
    expect(server.logs.filter((l) => (l.level as number) >= 40)).toEqual([]);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });
});

describe('on a bare server', () => {
  const servers: http.Server[] = [];
  afterAll(() => servers.forEach((s) => s.close()));

  async function serve(handler: http.RequestListener, opts: http.ServerOptions = {}) {
    const codes: string[] = [];
    const server = http.createServer(opts, handler);
    answerClientErrors(server, pino({ level: 'silent' }), (code) => codes.push(code));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, codes };
  }

  it('headers that do not arrive in time are a 408 client_timeout', async () => {
    const { url, codes } = await serve((_req, res) => res.end('unreachable'), {
      headersTimeout: 300,
      requestTimeout: 600,
      connectionsCheckingInterval: 50,
    });
    const { text, closed } = await rawExchange(url, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    expect(closed).toBe(true);
    expectJsonError(text, 408, 'client_timeout');
    expect(codes).toEqual(['client_timeout']);
  });

  it('a pipelined request that fails to parse behind a response under way is answered after it, not into it', async () => {
    const { url, codes } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '12' });
      res.write('partial ');
      setTimeout(() => res.end('rest'), 300);
    });
    const { text, closed } = await rawExchange(url, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGARBAGE\r\n\r\n');
    expect(closed).toBe(true);
    const second = text.indexOf('partial rest') + 'partial rest'.length;
    expect(text.startsWith('HTTP/1.1 200 OK')).toBe(true);
    expect(second).toBeGreaterThan(20);
    expectJsonError(text.slice(second), 400, 'bad_request');
    expect(codes).toEqual(['bad_request']);
  });
});
