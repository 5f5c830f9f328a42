/**
 * Several models, continued: on-demand models (loaded at their first request, unloaded after their keep-alive,
 * evicted under --max-resident-models, with counters that survive unloads), and per-model GPU placement with
 * engine processes (chat on two engines pinned to GPUs 0 and 1, embeddings on GPU 2), tested on CPU.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeDemoModel } from '../src/demo-model/demo-model.js';
import { scrape, value, type Sample } from './helpers/prom.js';
import { health, postJson, startServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/until.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-placement-'));
const embedFile = path.join(dir, 'embed.gguf');

beforeAll(async () => {
  await writeDemoModel({ size: 'tiny', outPath: embedFile, pooling: 'mean' });
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

interface ModelsHealth {
  status: string;
  models: { id: string; state: string; workers: { ready: number; total: number } }[];
  engines?: { engine: number; model: string; device: string; pid: number; cudaVisibleDevices: string | null }[];
}

const modelsHealth = async (url: string) => (await health(url)) as unknown as ModelsHealth;

describe('on-demand models', () => {
  let server: TestServer;
  // e1 stays until evicted; e2 unloads one second after its last request.
  const config = () =>
    writeConfig(
      'on-demand.yaml',
      `max-resident-models: 2
models:
  chat: { source: ${JSON.stringify(inject('tinyModel'))} }
  e1: { source: ${JSON.stringify(embedFile)}, on-demand: true }
  e2: { source: ${JSON.stringify(embedFile)}, on-demand: true, keep-alive: 1 }
`,
    );
  beforeAll(async () => {
    server = await startServer(['--config', config()]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  const metric = (s: Sample[], name: string, labels: Record<string, string>) => value(s, name, labels);
  const embed = async (model: string, input: string) => {
    const r = await postJson(`${server.url}/v1/embeddings`, { model, input });
    expect(r.status).toBe(200);
    return r.body.usage.prompt_tokens as number;
  };

  it('load at the first request (which waits in the queue, measured), evict the idle one for room, unload after keep-alive, and keep counting across loads', async () => {
    // Ready without them: the on-demand models are not loaded at start.
    const h = await modelsHealth(server.url);
    expect(h.status).toBe('ok');
    expect(h.models.map((m) => [m.id, m.state])).toEqual([
      ['chat', 'ready'],
      ['e1', 'unloaded'],
      ['e2', 'unloaded'],
    ]);
    let s = await scrape(server.url);
    expect(['chat', 'e1', 'e2'].map((model) => metric(s, 'qwen_model_resident', { model }))).toEqual([1, 0, 0]);
    expect(metric(s, 'qwen_model_loads_total', { model: 'e1' })).toBe(0);

    const first = await embed('e1', 'hello');
    s = await scrape(server.url);
    expect(metric(s, 'qwen_model_loads_total', { model: 'e1' })).toBe(1);
    expect(metric(s, 'qwen_model_resident', { model: 'e1' })).toBe(1);
    // The request waited in e1's queue while the model loaded: that wait is its queue time.
    expect(metric(s, 'qwen_request_queue_seconds_count', { model: 'e1' })).toBe(1);
    expect(metric(s, 'qwen_request_queue_seconds_sum', { model: 'e1' })).toBeGreaterThan(0);
    expect(metric(s, 'qwen_prompt_tokens_total', { model: 'e1' })).toBe(first);

    // Two resident already (chat, e1): e2 needs room, and e1 is idle: it is evicted, its counters kept.
    await embed('e2', 'world');
    s = await scrape(server.url);
    expect(metric(s, 'qwen_model_unloads_total', { model: 'e1', reason: 'evicted' })).toBe(1);
    expect(['chat', 'e1', 'e2'].map((model) => metric(s, 'qwen_model_resident', { model }))).toEqual([1, 0, 1]);
    expect(metric(s, 'qwen_prompt_tokens_total', { model: 'e1' })).toBe(first);
    expect(metric(s, 'qwen_requests_finished_total', { model: 'e1', finish_reason: 'stop' })).toBe(1);

    // e2 is unloaded one second after its request.
    await until('e2 to be unloaded after its keep-alive', async () => {
      const now = await scrape(server.url);
      return metric(now, 'qwen_model_unloads_total', { model: 'e2', reason: 'idle' }) === 1 ? now : undefined;
    });
    expect((await modelsHealth(server.url)).models.find((m) => m.id === 'e2')!.state).toBe('unloaded');

    // e1 again: loaded a second time, and its counters go on from where they were.
    const second = await embed('e1', 'hello again');
    s = await scrape(server.url);
    expect(metric(s, 'qwen_model_loads_total', { model: 'e1' })).toBe(2);
    expect(metric(s, 'qwen_prompt_tokens_total', { model: 'e1' })).toBe(first + second);
    expect(metric(s, 'qwen_requests_finished_total', { model: 'e1', finish_reason: 'stop' })).toBe(2);
    // The chat model was never touched.
    expect(metric(s, 'qwen_model_loads_total', { model: 'chat' })).toBe(1);
    const chat = await postJson(`${server.url}/v1/completions`, { model: 'chat', prompt: 'hi', max_tokens: 2 });
    expect(chat.status).toBe(200);
  });
});

describe('per-model GPU placement with engine processes', () => {
  let server: TestServer;
  beforeAll(async () => {
    // --gpu off: this machine has no GPU; each engine still gets its CUDA_VISIBLE_DEVICES.
    const file = writeConfig(
      'placement.yaml',
      `gpu: 'off'
models:
  chat: { source: ${JSON.stringify(inject('tinyModel'))}, gpus: [0, 1], sequences: 2 }
  embed: { source: ${JSON.stringify(embedFile)}, gpus: [2] }
`,
    );
    server = await startServer(['--config', file]);
    await until('every engine ready', async () => ((await modelsHealth(server.url)).status === 'ok' ? true : undefined));
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('chat runs on two engines pinned to GPUs 0 and 1, embeddings on one pinned to GPU 2; engine numbers are unique', async () => {
    const h = await modelsHealth(server.url);
    expect(h.engines!.map((e) => [e.model, e.engine, e.device, e.cudaVisibleDevices])).toEqual([
      ['chat', 0, 'cuda:0', '0'],
      ['chat', 1, 'cuda:1', '1'],
      ['embed', 2, 'cuda:2', '2'],
    ]);
    expect(h.models.map((m) => [m.id, m.workers.total])).toEqual([
      ['chat', 2],
      ['embed', 1],
    ]);
    expect((await postJson(`${server.url}/v1/completions`, { model: 'chat', prompt: 'hi', max_tokens: 2 })).status).toBe(200);
    expect((await postJson(`${server.url}/v1/embeddings`, { model: 'embed', input: 'hi' })).status).toBe(200);
    const s = await scrape(server.url);
    const up = s.filter((x) => x.name === 'qwen_engine_up').map((x) => [x.labels.model, x.labels.engine, x.labels.device, x.value]);
    expect(up.sort()).toEqual([
      ['chat', '0', 'cuda:0', 1],
      ['chat', '1', 'cuda:1', 1],
      ['embed', '2', 'cuda:2', 1],
    ]);
    // Worker series from the engines carry their model and engine.
    expect(value(s, 'qwen_prompt_tokens_total', { model: 'embed', engine: '2' })).toBeGreaterThan(0);
    expect(value(s, 'qwen_sequences_capacity', { model: 'chat' })).toBe(4);
  });
});
