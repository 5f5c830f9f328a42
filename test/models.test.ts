/**
 * Several models in one server: the demo chat model and a demo embedding model side by side, each with its
 * own pool and queue. Requests are routed by `model`; wrong models and kinds get clear errors; /v1/models,
 * /health, /tokenize and the metrics are per model, and the metrics equal what the client saw; a worker crash
 * in one model leaves the other serving; a model that cannot be loaded leaves the others serving.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { writeDemoModel } from '../src/demo-model/demo-model.js';
import { scrape, value, type Sample } from './helpers/prom.js';
import { health, postJson, startServer, type TestServer } from './helpers/server.js';
import { until, when } from './helpers/until.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-models-'));
const embedFile = path.join(dir, 'embed.gguf');
let server: TestServer;
let client: OpenAI;

/** The chat model takes one request per sequence, so an injected crash takes no other request with it. */
const CONFIG = `models:
  chat: { source: ${JSON.stringify(inject('tinyModel'))}, sequences: 1 }
  embed: { source: ${JSON.stringify(embedFile)}, context-size: 256 }
`;

beforeAll(async () => {
  await writeDemoModel({ size: 'tiny', outPath: embedFile, pooling: 'mean' });
  fs.writeFileSync(path.join(dir, 'models.yaml'), CONFIG);
  server = await startServer(['--config', path.join(dir, 'models.yaml')], { env: { QWEN_TEST_FAULTS: '1' } });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
});

afterAll(async () => {
  expect(await server.stop()).toBe(0);
  fs.rmSync(dir, { recursive: true, force: true });
});

const of = (samples: Sample[], name: string, labels: Record<string, string> = {}) => value(samples, name, labels);

describe('one server, a chat model and an embedding model', () => {
  it('/v1/models lists both with their kind, and /health reports each', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => [m.id, (m as unknown as { kind: string }).kind])).toEqual([
      ['chat', 'generate'],
      ['embed', 'embed'],
    ]);
    expect((await client.models.retrieve('embed')).id).toBe('embed');
    const h = (await health(server.url)) as unknown as { status: string; models: { id: string; kind: string; state: string }[] };
    expect(h.status).toBe('ok');
    expect(h.models.map((m) => [m.id, m.kind, m.state])).toEqual([
      ['chat', 'generate', 'ready'],
      ['embed', 'embed', 'ready'],
    ]);
  });

  it('routes by model; a request naming none goes to the first model of its kind', async () => {
    const chat = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    expect(chat.model).toBe('chat');
    const vectors = await client.embeddings.create({ model: 'embed', input: ['a', 'b'] });
    expect(vectors.model).toBe('embed');
    expect(vectors.data).toHaveLength(2);
    const noModel = await postJson(`${server.url}/v1/embeddings`, { input: 'a' });
    expect([noModel.status, noModel.body.model]).toEqual([200, 'embed']);
    const noModelChat = await postJson(`${server.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    expect([noModelChat.status, noModelChat.body.model]).toEqual([200, 'chat']);
  });

  it('an unknown model is a 404 listing the served ids; the wrong kind is a 400 naming the model kind', async () => {
    const unknown = await postJson(`${server.url}/v1/chat/completions`, { model: 'gpt-4', messages: [{ role: 'user', content: 'hi' }] });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'model_not_found', param: 'model' });
    expect(unknown.body.error.message).toMatch(/'gpt-4' does not exist; this server serves 'chat', 'embed'/);
    const chatOnEmbed = await postJson(`${server.url}/v1/chat/completions`, {
      model: 'embed',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(chatOnEmbed.status).toBe(400);
    expect(chatOnEmbed.body.error).toMatchObject({ code: 'model_not_generative', param: 'model' });
    expect(chatOnEmbed.body.error.message).toMatch(/'embed' is an embedding model/);
    const embedOnChat = await postJson(`${server.url}/v1/embeddings`, { model: 'chat', input: 'a' });
    expect(embedOnChat.status).toBe(400);
    expect(embedOnChat.body.error).toMatchObject({ code: 'model_not_embedding', param: 'model' });
    const messages = await postJson(`${server.url}/v1/messages`, {
      model: 'nope',
      max_tokens: 4,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(messages.status).toBe(404);
    expect(messages.body).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });

  it('/tokenize uses the named model: its own context size, and a 404 for an unknown one', async () => {
    const chat = await postJson(`${server.url}/tokenize`, { model: 'chat', content: 'hello world' });
    const embed = await postJson(`${server.url}/tokenize`, { model: 'embed', content: 'hello world' });
    expect([chat.status, chat.body.max_model_len]).toEqual([200, 2048]);
    expect([embed.status, embed.body.max_model_len]).toEqual([200, 256]);
    expect(embed.body.tokens).toEqual(chat.body.tokens);
    expect((await postJson(`${server.url}/tokenize`, { model: 'nope', content: 'x' })).status).toBe(404);
    // The embedding model's own context: an input too long for it is refused, naming the field.
    const long = await postJson(`${server.url}/v1/embeddings`, { model: 'embed', input: 'word '.repeat(400) });
    expect(long.status).toBe(400);
    expect(long.body.error.param).toBe('input');
  });

  it('the metrics of each model equal what its client sent and received; the tutorial metrics are their sum', async () => {
    const before = await scrape(server.url);
    let chatPrompt = 0;
    let chatCompletion = 0;
    for (let i = 0; i < 3; i++) {
      const r = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: `count ${i}` }], max_tokens: 5 });
      chatPrompt += r.usage!.prompt_tokens;
      chatCompletion += r.usage!.completion_tokens;
    }
    let embedPrompt = 0;
    for (let i = 0; i < 2; i++)
      embedPrompt += (await client.embeddings.create({ model: 'embed', input: [`x ${i}`, `y ${i}`] })).usage.prompt_tokens;
    // Refused: an unknown model (no model label: a typo is not a label value) and the wrong kind (the model's).
    await postJson(`${server.url}/v1/embeddings`, { model: 'typo', input: 'a' });
    await postJson(`${server.url}/v1/embeddings`, { model: 'chat', input: 'a' });
    const after = await scrape(server.url);
    const delta = (name: string, labels: Record<string, string>) => of(after, name, labels) - of(before, name, labels);
    // Chat: three answers; embeddings: two requests of two inputs, each input a task that finishes with stop.
    const chatFinished =
      delta('qwen_requests_finished_total', { model: 'chat', finish_reason: 'stop' }) +
      delta('qwen_requests_finished_total', { model: 'chat', finish_reason: 'length' });
    expect(chatFinished).toBe(3);
    expect(delta('qwen_requests_finished_total', { model: 'embed', finish_reason: 'stop' })).toBe(4);
    expect(delta('qwen_prompt_tokens_total', { model: 'chat' })).toBe(chatPrompt);
    expect(delta('qwen_generation_tokens_total', { model: 'chat' })).toBe(chatCompletion);
    expect(delta('qwen_prompt_tokens_total', { model: 'embed' })).toBe(embedPrompt);
    expect(delta('qwen_generation_tokens_total', { model: 'embed' })).toBe(0);
    expect(delta('qwen_request_queue_seconds_count', { model: 'chat' })).toBe(3);
    expect(delta('qwen_request_queue_seconds_count', { model: 'embed' })).toBe(4);
    expect(delta('qwen_requests_rejected_total', { model: 'chat', reason: 'invalid' })).toBe(1);
    expect(delta('qwen_requests_rejected_total', { model: 'embed', reason: 'invalid' })).toBe(0);
    expect(after.some((s) => s.labels.model === 'typo')).toBe(false);
    expect(
      after.find((s) => s.name === 'qwen_requests_rejected_total' && s.labels.reason === 'invalid' && s.labels.model === undefined),
    ).toBeDefined();
    // The tutorial's counter has no model label: every API request of both models (the two refusals included).
    expect(delta('qwen_inference_request_total', { method: 'POST', endpoint: '/v1/chat/completions' })).toBe(3);
    expect(delta('qwen_inference_request_total', { method: 'POST', endpoint: '/v1/embeddings' })).toBe(4);
    expect(after.some((s) => s.name === 'qwen_inference_request_total' && 'model' in s.labels)).toBe(false);
    for (const model of ['chat', 'embed']) {
      expect(of(after, 'qwen_workers_ready', { model })).toBe(1);
      expect(of(after, 'qwen_model_resident', { model })).toBe(1);
      expect(of(after, 'qwen_model_loads_total', { model })).toBe(1);
    }
    expect(of(after, 'qwen_sequences_capacity', { model: 'chat' })).toBe(1);
    expect(of(after, 'qwen_sequences_capacity', { model: 'embed' })).toBe(8);
  });

  it('a worker crash in the chat model fails only its request; the embedding model never notices', async () => {
    const before = await scrape(server.url);
    const embedding = client.embeddings.create({ model: 'embed', input: 'still here' });
    const crashed = await postJson(`${server.url}/v1/completions`, { model: 'chat', prompt: 'x __qwen_fault:crash__', max_tokens: 8 });
    expect(crashed.status).toBe(503);
    expect(crashed.body.error.code).toBe('worker_failed');
    expect((await embedding).data).toHaveLength(1);
    // The chat model's replacement worker loads; meanwhile and after, embeddings keep being served.
    expect((await client.embeddings.create({ model: 'embed', input: 'and here' })).data).toHaveLength(1);
    await until(
      'the chat model to be ready again',
      when(
        () => health(server.url),
        (h) => h.status === 'ok',
      ),
    );
    const r = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'back?' }], max_tokens: 3 });
    expect(r.choices).toHaveLength(1);
    const after = await scrape(server.url);
    expect(of(after, 'qwen_worker_restarts_total', { model: 'chat' }) - of(before, 'qwen_worker_restarts_total', { model: 'chat' })).toBe(
      1,
    );
    expect(of(after, 'qwen_worker_restarts_total', { model: 'embed' }) - of(before, 'qwen_worker_restarts_total', { model: 'embed' })).toBe(
      0,
    );
    expect(of(after, 'qwen_prompt_tokens_total', { model: 'chat' })).toBeGreaterThanOrEqual(
      of(before, 'qwen_prompt_tokens_total', { model: 'chat' }),
    );
  });
});

describe('a model that cannot be loaded', () => {
  let partial: TestServer;
  beforeAll(async () => {
    const bad = path.join(dir, 'bad.gguf');
    fs.writeFileSync(bad, Buffer.alloc(4096, 7));
    partial = await startServer(['--model', `chat=${inject('tinyModel')}`, '--model', `broken=${bad}`]);
  });
  afterAll(async () => {
    expect(await partial.stop()).toBe(0);
  });

  it('leaves the others serving: /health is degraded and names it, and its requests get 503 model_unavailable', async () => {
    const h = await until(
      'the broken model to be marked failed',
      when(
        async () => (await health(partial.url)) as unknown as { status: string; models: { id: string; state: string; error?: string }[] },
        (x) => x.models.some((m) => m.id === 'broken' && m.state === 'failed'),
      ),
    );
    expect(h.status).toBe('degraded');
    expect(h.models.find((m) => m.id === 'broken')!.error).toMatch(/GGUF/i);
    const ok = await postJson(`${partial.url}/v1/completions`, { model: 'chat', prompt: 'hi', max_tokens: 2 });
    expect(ok.status).toBe(200);
    const broken = await postJson(`${partial.url}/v1/completions`, { model: 'broken', prompt: 'hi', max_tokens: 2 });
    expect(broken.status).toBe(503);
    expect(broken.body.error.code).toBe('model_unavailable');
    expect(broken.body.error.message).toMatch(/'broken' could not be loaded/);
  });
});
