/**
 * /v1/embeddings through the official client, on a demo model written as an embedding model (it declares
 * a pooling type, as gte-Qwen2 GGUFs do); and the clear 400s when a model is used for what it is not.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDemoModel } from '../src/demo-model/demo-model.js';
import { useClientServer } from './helpers/client.js';
import { postJson, startServer, type TestServer } from './helpers/server.js';

const MODEL = 'embed-test';
/** Small, so that an input can be too long for it. */
const CONTEXT = 128;
const generator = useClientServer('generator');
let server: TestServer;
let client: OpenAI;

beforeAll(async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'qwen-serve-embed-')), 'embed.gguf');
  await writeDemoModel({ size: 'tiny', outPath: file, pooling: 'mean' });
  server = await startServer(['--model', file, '--model-id', MODEL, '--context-size', String(CONTEXT)]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
});

const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);

describe('POST /v1/embeddings', () => {
  it('one unit vector per input, in order, with usage', async () => {
    const res = await client.embeddings.create({ model: MODEL, input: ['hello world', 'something else entirely', 'hello world'] });
    expect(res.object).toBe('list');
    expect(res.data.map((d) => d.index)).toEqual([0, 1, 2]);
    const [a, b, c] = res.data.map((d) => d.embedding);
    expect(a).toHaveLength(64);
    for (const v of [a!, b!, c!]) expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    // The same text gives the same vector; another text a different one.
    expect(dot(a!, c!)).toBeCloseTo(1, 6);
    expect(dot(a!, b!)).toBeLessThan(0.999999);
    const counted = await postJson(`${server.url}/tokenize`, { content: 'hello world' });
    const single = await client.embeddings.create({ model: MODEL, input: 'hello world' });
    expect(single.usage.prompt_tokens).toBe(counted.body.count);
    expect(res.usage.prompt_tokens).toBe(res.usage.total_tokens);
  });

  it('token-id inputs give what the same text gives; base64 encodes float32', async () => {
    const ids = (await postJson(`${server.url}/tokenize`, { content: 'hello world' })).body.tokens as number[];
    const byText = (await client.embeddings.create({ model: MODEL, input: 'hello world' })).data[0]!.embedding;
    const byIds = (await client.embeddings.create({ model: MODEL, input: ids })).data[0]!.embedding;
    expect(byIds).toEqual(byText);
    const raw = await postJson(`${server.url}/v1/embeddings`, { input: 'hello world', encoding_format: 'base64' });
    const floats = new Float32Array(Uint8Array.from(Buffer.from(raw.body.data[0].embedding as string, 'base64')).buffer);
    expect(Array.from(floats)).toEqual(byText.map((v) => Math.fround(v)));
  });

  it('bad input, and generating on an embedding model, are 400s that say so', async () => {
    const cases: [string, object, string, string?][] = [
      ['/v1/embeddings', { input: [] }, 'input'],
      ['/v1/embeddings', { input: 'x', dimensions: 32 }, 'dimensions'],
      ['/v1/embeddings', { input: 'x', encoding_format: 'int8' }, 'encoding_format'],
      ['/v1/embeddings', { input: [1, 999_999] }, 'input'],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] }, 'model', 'model_not_generative'],
    ];
    for (const [endpoint, body, param, code] of cases) {
      const res = await postJson(`${server.url}${endpoint}`, body);
      expect([res.status, res.body.error?.param], JSON.stringify(body)).toEqual([400, param]);
      if (code) expect(res.body.error.code).toBe(code);
    }
  });

  it('an input longer than the context is a 400 naming it, with the numbers', async () => {
    const long = 'hello world '.repeat(200);
    for (const [input, param] of [
      [long, 'input'],
      [['short', long], 'input.1'],
      [Array<number>(CONTEXT).fill(1), 'input'],
      [[[1, 2], Array<number>(CONTEXT + 5).fill(1)], 'input.1'],
    ] as const) {
      const err = await client.embeddings.create({ model: MODEL, input: input as string }).catch((e: unknown) => e);
      expect(err, param).toBeInstanceOf(OpenAI.BadRequestError);
      const e = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect([e.code, e.param]).toEqual(['context_length_exceeded', param]);
      expect(e.message).toMatch(
        new RegExp(
          // Counted exactly, or refused on its length alone (at least one token per longest token's bytes).
          `maximum context length is ${CONTEXT} tokens \\(--context-size\\)(, so an input may have at most ${CONTEXT - 1})?; ${param.replace('.', '\\.')} has (at least )?\\d+ tokens`,
        ),
      );
    }
    // One token short of the context fits.
    const fits = await client.embeddings.create({ model: MODEL, input: Array<number>(CONTEXT - 1).fill(1) });
    expect(fits.data[0]!.embedding).toHaveLength(64);
    // Client errors are not server faults: nothing was logged at error level.
    expect(server.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('an empty input is a 400 naming it, as OpenAI answers', async () => {
    for (const [input, param] of [
      ['', 'input'],
      [['a', ''], 'input.1'],
      [[[]], 'input.0'],
    ] as const) {
      const res = await postJson(`${server.url}/v1/embeddings`, { input });
      expect([res.status, res.body.error.param], JSON.stringify(input)).toEqual([400, param]);
      expect(res.body.error.message).toMatch(/must not be empty/);
    }
  });

  it('a text-generation model answers /v1/embeddings with model_not_embedding', async () => {
    const err = await generator.client.embeddings.create({ model: 'generator', input: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('model_not_embedding');
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(/text-generation model, not an embedding model/);
  });
});
