/** A test file's server on the tiny model with the official client pointed at it, started once per file. */
import OpenAI from 'openai';
import { afterAll, beforeAll, expect } from 'vitest';
import { startServer, type TestServer } from './server.js';

export interface ClientServer {
  server: TestServer;
  client: OpenAI;
}

/** Registers beforeAll / afterAll; the returned object is filled before the first test runs. */
export function useClientServer(modelId: string, args: string[] = []): ClientServer {
  const ctx = {} as ClientServer;
  beforeAll(async () => {
    ctx.server = await startServer(['--model-id', modelId, ...args]);
    ctx.client = new OpenAI({ baseURL: `${ctx.server.url}/v1`, apiKey: 'x', maxRetries: 0 });
  });
  afterAll(async () => {
    expect(await ctx.server.stop()).toBe(0);
  });
  return ctx;
}
