/**
 * The Host allowlist (--allowed-hosts) against DNS rebinding: bound to a loopback address the server
 * answers only localhost, *.localhost and IP literals, on every path of both ports and before auth; a
 * listed name allows itself (and its subdomains with a leading dot); bound to 0.0.0.0 it answers any host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/config.js';
import { hostName, hostPolicy, isLoopback } from '../src/http/middleware/host-check.js';
import { rateLimited } from '../src/log.js';
import { parseRawResponse, rawExchange, rawRequest } from './helpers/raw-http.js';
import { freePort, startServer, type TestServer } from './helpers/server.js';

const REBOUND = 'refused a request whose Host header --allowed-hosts does not allow (DNS rebinding guard)';

function expectRefused(res: { status: number; body: any }, what: string) {
  expect(res.status, what).toBe(403);
  expect(res.body.error.code, what).toBe('host_not_allowed');
  expect(res.body.error.type).toBe('invalid_request_error');
}

describe('the policy', () => {
  it('parses Host headers: the port is ignored, IP literals are recognized, malformed ones are not hosts', () => {
    expect(hostName('LocalHost:8080')).toEqual({ name: 'localhost', ip: false });
    expect(hostName('127.0.0.1:80')).toEqual({ name: '127.0.0.1', ip: true });
    expect(hostName('[::1]:8080')).toEqual({ name: '[::1]', ip: true });
    expect(hostName('[fe80::1]')).toEqual({ name: '[fe80::1]', ip: true });
    for (const bad of ['', '[::1', '[evil]', '::1', 'a:b:c', ':80']) expect(hostName(bad), bad).toBeUndefined();
  });

  it('knows loopback listen addresses', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST']) expect(isLoopback(a), a).toBe(true);
    for (const a of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com']) expect(isLoopback(a), a).toBe(false);
  });

  it('* and auto off loopback allow any well-formed host; a list allows its names and IP literals', () => {
    for (const p of [hostPolicy('*', '127.0.0.1'), hostPolicy('auto', '0.0.0.0')]) {
      expect(p.allows('anything.example:1')).toBe(true);
      expect(p.allows('[nonsense')).toBe(false);
    }
    const list = hostPolicy(['.example.com', 'api.test'], '0.0.0.0');
    for (const h of ['example.com', 'a.b.example.com:8080', 'api.test', '10.0.0.1', '[::1]']) expect(list.allows(h), h).toBe(true);
    for (const h of ['x.api.test', 'notexample.com', 'localhost', 'example.com.evil']) expect(list.allows(h), h).toBe(false);
  });

  it('the warning is rate-limited: once per interval, with the number dropped meanwhile', () => {
    let now = 0;
    const emitted: number[] = [];
    const warn = rateLimited(60_000, () => now);
    for (const t of [0, 1, 59_999, 60_000, 60_001, 200_000]) {
      now = t;
      warn((suppressed) => emitted.push(suppressed));
    }
    expect(emitted).toEqual([0, 2, 1]);
  });

  it('--allowed-hosts parses names, auto and *, and refuses ports', () => {
    const parse = (v: string) => {
      const r = parseConfig(['--allowed-hosts', v], {});
      if (r.kind !== 'config') throw new Error('expected a config');
      return r.config.allowedHosts;
    };
    expect(parse('auto')).toBe('auto');
    expect(parse('*')).toBe('*');
    expect(parse(' Api.Example.com, .corp.example ,my_service')).toEqual(['api.example.com', '.corp.example', 'my_service']);
    expect(parseConfig([], { QWEN_ALLOWED_HOSTS: 'a.test' })).toMatchObject({ config: { allowedHosts: ['a.test'] } });
    expect(() => parse('example.com:8080')).toThrow(/--allowed-hosts must be auto, \* or comma-separated host names without ports/);
    expect(() => parse('a.test,,b.test')).toThrow(/--allowed-hosts/);
  });
});

describe('bound to 127.0.0.1 (the default): auto', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(['--metrics-port', String(await freePort())]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it.each(['127.0.0.1', 'localhost', 'LOCALHOST:1234', 'api.localhost:8080', 'a.b.localhost', '[::1]:80', '10.1.2.3'])(
    'Host %s is answered',
    async (host) => {
      const res = await rawRequest(server.url, { path: '/v1/models', host });
      expect(res.status).toBe(200);
    },
  );

  it.each(['evil.example', 'evil.example:8080', 'localhost.evil.example', '127.0.0.1.nip.io', 'localhost.', '[::1', 'a b'])(
    'Host %s is refused on every path and method of both ports',
    async (host) => {
      const requests = [
        { path: '/v1/models' },
        { path: '/health' },
        { path: '/metrics' },
        { path: '/dashboard' },
        { path: '/no/such/path' },
        { method: 'POST', path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 'x' }] } },
        { method: 'OPTIONS', path: '/v1/chat/completions' },
      ];
      for (const r of requests) expectRefused(await rawRequest(server.url, { ...r, host }), `${r.path} on the API port`);
      expectRefused(await rawRequest(server.metricsUrl!, { path: '/metrics', host }), 'the metrics port');
      const res = await rawRequest(server.url, { path: '/v1/models', host });
      expect(res.body.error.message).toContain('--allowed-hosts');
      expect(res.body.error.message).toContain('localhost, *.localhost and IP addresses');
    },
  );

  it('an HTTP/1.1 request without Host is refused (both ports); HTTP/1.0 may omit it', async () => {
    for (const url of [server.url, server.metricsUrl!]) {
      const res = await rawRequest(url, { path: '/metrics', host: null });
      expectRefused(res, url);
      expect(res.body.error.message).toBe('An HTTP/1.1 request must carry a Host header.');
    }
    const old = parseRawResponse((await rawExchange(server.url, 'GET /health HTTP/1.0\r\n\r\n')).text);
    expect(old.status).toBe(200);
  });

  it('refusals are logged at warn level once a minute, not once per request', async () => {
    await Promise.all(Array.from({ length: 50 }, () => rawRequest(server.url, { path: '/health', host: 'rebind.example' })));
    const warnings = server.logs.filter((l) => l.msg === REBOUND);
    // One limiter per port: the API port's and the metrics port's first refusals.
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings.length).toBeLessThanOrEqual(2);
    expect(warnings[0]!.level).toBe(40);
  });
});

describe('--allowed-hosts names', () => {
  let server: TestServer;
  const KEY = 'hosts-key';
  beforeAll(async () => {
    server = await startServer(['--allowed-hosts', '.example.com,api.test', '--api-key', KEY]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('listed names (and subdomains of a leading-dot name) and IP literals are answered; others are refused before auth', async () => {
    for (const host of ['example.com', 'a.b.example.com:8080', 'API.TEST', '127.0.0.1']) {
      const res = await rawRequest(server.url, { path: '/v1/models', host, headers: { authorization: `Bearer ${KEY}` } });
      expect(res.status, host).toBe(200);
    }
    for (const host of ['x.api.test', 'localhost', 'example.com.evil.test']) {
      // No key: the Host is refused first, so the answer does not depend on the key.
      const res = await rawRequest(server.url, { path: '/v1/models', host });
      expectRefused(res, host);
      expect(res.body.error.message).toContain('.example.com, api.test and IP addresses');
    }
  });
});

describe('bound to 0.0.0.0: auto answers any host', () => {
  it('a service name is answered', async () => {
    const server = await startServer(['--host', '0.0.0.0']);
    try {
      expect((await rawRequest(server.url, { path: '/v1/models', host: 'qwen-serve:8080' })).status).toBe(200);
      expectRefused(await rawRequest(server.url, { path: '/v1/models', host: null }), 'no Host');
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
