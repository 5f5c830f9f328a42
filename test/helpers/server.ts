/**
 * Starts the real qwen-serve CLI (compiled) as a child process on a free port with the tiny model,
 * and gives tests its URL, its log lines and a way to stop it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { inject } from 'vitest';
import { SseParser } from '../../src/tools/shared/sse.js';
import { until, when } from './until.js';

export { readSse } from '../../src/tools/shared/sse.js';

export const CLI = path.resolve('dist/src/cli.js');

export interface TestServer {
  url: string;
  port: number;
  /** URL of the dedicated metrics port, when the test enabled it. */
  metricsUrl?: string;
  proc: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Wait until /health says ok (default true). */
  waitReady?: boolean;
}

export async function startServer(args: string[] = [], opts: StartOptions = {}): Promise<TestServer> {
  const proc = spawn(
    process.execPath,
    [
      CLI,
      // The tiny model unless the test names its models (a --config file's models: serve when no --model is given).
      ...(args.includes('--model') || args.includes('--config') ? [] : ['--model', inject('tinyModel')]),
      '--models-dir',
      inject('modelsDir'),
      '--port',
      '0',
      '--threads',
      '1',
      // Tests run servers side by side: no fixed metrics port unless a test asks for one.
      ...(args.includes('--metrics-port') ? [] : ['--metrics-port', '0']),
      ...args,
    ],
    { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let metricsPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'metrics listening') metricsPort = entry.port as number;
        if (entry.msg === 'listening') resolve(entry.port as number);
      } catch {
        // not a log line
      }
    });
    exited.then((code) => reject(new Error(`server exited with ${code} before listening: ${stderr}`)), reject);
  });
  const url = `http://127.0.0.1:${port}`;
  const server: TestServer = {
    url,
    port,
    metricsUrl: metricsPort === undefined ? undefined : `http://127.0.0.1:${metricsPort}`,
    proc,
    logs,
    stderr: () => stderr,
    exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  if (opts.waitReady !== false) {
    // A server that dies after listening fails the wait at once, with its exit code and stderr.
    const died = exited.then((code) => {
      throw new Error(`server exited (code ${code}, signal ${proc.signalCode}) after listening, before /health said ok: ${stderr}`);
    });
    died.catch(() => undefined); // a later, ordered exit is not an unhandled rejection
    await Promise.race([waitHealthy(url), died]);
  }
  return server;
}

/** A port that was free a moment ago (for flags that reserve 0 for "off"). */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function waitHealthy(url: string, timeoutMs = 30_000): Promise<void> {
  await until(`${url} to answer /health with 200`, async () => ((await fetch(`${url}/health`)).ok ? true : undefined), timeoutMs, 50);
}

/** What /health answers (engines: with engine processes only). */
export interface Health {
  status: string;
  workers: { ready: number; total: number };
  requests: { running: number; waiting: number };
  engines?: EngineHealth[];
}

export interface EngineHealth {
  engine: number;
  device: string;
  state: string;
  pid: number;
  cudaVisibleDevices: string | null;
  workers: { ready: number; total: number };
  restarts: number;
  running: number;
}

export async function health(url: string): Promise<Health> {
  return (await (await fetch(`${url}/health`)).json()) as Health;
}

/**
 * Polls until every worker is ready (/health "ok"). startServer returns at the first 200, which is also
 * "degraded" with one worker of two loading: a test that counts on every worker waits for this.
 */
export async function waitAllWorkers(url: string, timeoutMs = 30_000): Promise<void> {
  await until(
    'every worker to be ready',
    when(
      () => health(url),
      (h) => h.status === 'ok',
    ),
    timeoutMs,
    50,
  );
}

/** Polls until the server reports no running or waiting request. */
export async function waitIdle(url: string, timeoutMs = 10_000): Promise<void> {
  await until(
    'no running or waiting request',
    when(
      () => health(url),
      (h) => h.requests.running === 0 && h.requests.waiting === 0,
    ),
    timeoutMs,
    25,
  );
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/**
 * Opens a streamed completion and reads it up to its first event; `rest` resolves with every event
 * (the first included) when the stream ends.
 */
export async function openStream(
  url: string,
  body: object,
  path = '/v1/completions',
): Promise<{ first: unknown; rest: Promise<unknown[]> }> {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (res.status !== 200) throw new Error(`stream answered ${res.status}: ${await res.text()}`);
  const reader = res.body!.getReader();
  const sse = new SseParser();
  const events: unknown[] = [];
  const pump = async (stopAtFirst: boolean): Promise<void> => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      events.push(...sse.push(value));
      if (stopAtFirst && events.length > 0) return;
    }
  };
  await pump(true);
  return { first: events[0], rest: pump(false).then(() => events) };
}
