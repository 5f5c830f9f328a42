/**
 * Engine processes (--engines / --gpus) on CPU: requests spread by free sequences over both engines,
 * each engine process runs with its own CUDA_VISIBLE_DEVICES, the merged counters equal what the
 * client saw, and an engine killed mid-stream costs only its own requests, comes back, and no
 * counter goes down. With the NVML stub, the GPU series carry the engines that use each device.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNvmlStub } from './helpers/nvml-stub.js';
import { cumulativeSamples, scrape, value, type Sample } from './helpers/prom.js';
import {
  health as serverHealth,
  openStream,
  postJson,
  startServer,
  waitIdle,
  type EngineHealth,
  type Health,
  type TestServer,
} from './helpers/server.js';
import { until, when } from './helpers/until.js';

/** /health of a server with engine processes: every answer lists them. */
async function health(url: string): Promise<Health & { engines: EngineHealth[] }> {
  return (await serverHealth(url)) as Health & { engines: EngineHealth[] };
}

/** The environment the kernel holds for a process: what it was really started with. */
function environOf(pid: number): Record<string, string> {
  const raw = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
  return Object.fromEntries(
    raw
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

/** Opens a streamed completion and resolves once its first token arrived; `rest` gives the remaining events. */

describe('--engines 2 on CPU, each pinned to its own (pretend) GPU', () => {
  let server: TestServer;
  let openai: OpenAI;
  beforeAll(async () => {
    // --gpu off: this machine has no GPU; the engines still get CUDA_VISIBLE_DEVICES 0 and 1.
    server = await startServer(['--engines', '2', '--gpus', '0,1', '--gpu', 'off', '--sequences', '2', '--max-queue', '32']);
    openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    await until(
      'both engines ready',
      when(
        () => health(server.url),
        (h) => h.status === 'ok',
      ),
    );
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('starts one process per engine, each with its own CUDA_VISIBLE_DEVICES', async () => {
    const h = await health(server.url);
    expect(h.engines.map((e) => [e.engine, e.device, e.state])).toEqual([
      [0, 'cuda:0', 'ready'],
      [1, 'cuda:1', 'ready'],
    ]);
    // As each engine read it from its own environment, and as the kernel holds it.
    expect(h.engines.map((e) => e.cudaVisibleDevices)).toEqual(['0', '1']);
    expect(h.engines.map((e) => environOf(e.pid).CUDA_VISIBLE_DEVICES)).toEqual(['0', '1']);
    expect(new Set([server.proc.pid, ...h.engines.map((e) => e.pid)]).size).toBe(3);
  });

  it('tool calls, n > 1 and /tokenize work through engine processes (their messages and the front vocabulary)', async () => {
    const tools = [
      { type: 'function' as const, function: { name: 'f', parameters: { type: 'object', properties: { ok: { type: 'boolean' } } } } },
    ];
    const res = await openai.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'x' }],
      tools,
      tool_choice: 'required',
      n: 2,
      temperature: 0,
    });
    expect(res.choices.map((c) => c.finish_reason)).toEqual(['tool_calls', 'tool_calls']);
    expect(
      typeof (
        JSON.parse(
          res.choices[0]!.message.tool_calls![0]!.type === 'function' ? res.choices[0]!.message.tool_calls![0]!.function.arguments : '',
        ) as { ok: unknown }
      ).ok,
    ).toBe('boolean');
    const counted = await postJson(`${server.url}/tokenize`, { messages: [{ role: 'user', content: 'x' }] });
    const plain = await openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 });
    expect(counted.body.count).toBe(plain.usage!.prompt_tokens);
  });

  it('fills both engines before queueing, and the merged counters equal the client tally over 16 requests', async () => {
    await waitIdle(server.url);
    const before = await scrape(server.url);
    // 16 at once against 2 engines × 2 sequences: 4 run, 12 wait in the front's queue.
    // ignore_eos is a llama.cpp-style extension the official client passes through untyped.
    const hold = {
      model: 'tiny',
      prompt: 'hold',
      max_tokens: 300,
      temperature: 0,
      ignore_eos: true,
    } as OpenAI.CompletionCreateParamsNonStreaming;
    const long = Array.from({ length: 4 }, () => openai.completions.create(hold));
    const busy = await until(
      'both engines full',
      when(
        () => health(server.url),
        (h) => h.engines.every((e) => e.running === 2),
      ),
    );
    expect(busy.requests.running).toBe(4);
    const rest = Array.from({ length: 12 }, (_, i) =>
      i % 2 === 0
        ? openai.completions.create({ model: 'tiny', prompt: `prompt number ${i}`, max_tokens: 6 + i, temperature: 0 })
        : openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: `question ${i}` }], max_tokens: 6 + i }),
    );
    const results = await Promise.all([...long, ...rest]);
    await waitIdle(server.url);
    const after = await scrape(server.url);
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);

    const usage = results.map((r) => r.usage!);
    const finishReasons = results.map((r) => r.choices[0]!.finish_reason);
    expect(delta('qwen_generation_tokens_total')).toBe(usage.reduce((s, u) => s + u.completion_tokens, 0));
    expect(delta('qwen_prompt_tokens_total')).toBe(usage.reduce((s, u) => s + u.prompt_tokens, 0));
    expect(delta('qwen_request_generation_tokens_count')).toBe(16);
    expect(delta('qwen_inference_request_total', { endpoint: '/v1/completions' })).toBe(10);
    expect(delta('qwen_inference_request_total', { endpoint: '/v1/chat/completions' })).toBe(6);
    for (const reason of ['stop', 'length'] as const) {
      expect(delta('qwen_requests_finished_total', { finish_reason: reason })).toBe(finishReasons.filter((f) => f === reason).length);
    }
    // Both engines served some of them, and the per-engine series add up to the totals.
    const perEngine = ['0', '1'].map((engine) => delta('qwen_request_generation_tokens_count', { engine }));
    expect(perEngine.every((n) => n > 0)).toBe(true);
    expect(perEngine[0]! + perEngine[1]!).toBe(16);
    // Front-level series have no engine label; engine series always have both labels.
    expect(after.find((s) => s.name === 'qwen_inference_request_total')!.labels.engine).toBeUndefined();
    for (const s of after.filter((x) => x.name.startsWith('qwen_generation_tokens_total') || x.name === 'qwen_worker_restarts_total')) {
      expect(['0', '1']).toContain(s.labels.engine);
      expect(s.labels.device).toBe(`cuda:${s.labels.engine}`);
    }
    expect(value(after, 'qwen_engine_up')).toBe(2);
  });

  it('a client that leaves mid-stream cancels the generation inside the engine process', async () => {
    await waitIdle(server.url);
    const before = await scrape(server.url);
    const controller = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'leave', max_tokens: 2000, temperature: 0, ignore_eos: true, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    // 2000 tokens take seconds here; a cancel reaches the engine's worker within one decode step.
    await waitIdle(server.url, 5_000);
    const after = await scrape(server.url);
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(delta('qwen_requests_finished_total', { finish_reason: 'abort' })).toBe(1);
    const generated = delta('qwen_generation_tokens_total');
    expect(generated).toBeGreaterThan(0);
    expect(generated).toBeLessThan(2000);
    // Nothing keeps generating after the request ended: four short requests then run on both engines (they
    // spread by free sequences), and the tokens generated meanwhile are exactly theirs. A sequence still
    // decoding for the cancelled request would be batched with them and add its own tokens.
    const probes = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        postJson(`${server.url}/v1/completions`, { prompt: `probe ${i}`, max_tokens: 8, temperature: 0, ignore_eos: true }),
      ),
    );
    for (const p of probes) expect(p.body.usage?.completion_tokens, JSON.stringify(p.body)).toBe(8);
    await waitIdle(server.url);
    expect(value(await scrape(server.url), 'qwen_generation_tokens_total') - value(after, 'qwen_generation_tokens_total')).toBe(4 * 8);
  });

  it('an engine killed mid-stream fails only its own streams, comes back, and no counter goes down', async () => {
    await waitIdle(server.url);
    const h = await health(server.url);
    const victim = h.engines[0]!;
    // Four streams: the dispatcher gives each engine two (most free sequences first).
    const streams = [];
    for (let i = 0; i < 4; i++)
      streams.push(await openStream(server.url, { prompt: `s${i}`, max_tokens: 400, temperature: 0, ignore_eos: true }));
    await until(
      'two streams per engine',
      when(
        () => health(server.url),
        (x) => x.engines.every((e) => e.running === 2),
      ),
    );
    const before: Sample[] = await scrape(server.url);

    process.kill(victim.pid, 'SIGKILL');
    // OpenAI chunks and error chunks, inspected loosely below.
    const events = (await Promise.all(streams.map((s) => s.rest))) as any[][];
    const failed = events.filter((e) => e.some((x) => x.error));
    const finished = events.filter((e) => e.some((x) => x.choices?.[0]?.finish_reason === 'length'));
    expect(failed).toHaveLength(2);
    expect(finished).toHaveLength(2);
    for (const e of failed) {
      const error = e.find((x) => x.error).error;
      expect(error.code).toBe('engine_failed');
      expect(error.type).toBe('server_error');
      expect(error.message).toMatch(/engine 0.*cuda:0.*exited.*SIGKILL.*retry/i);
      expect(e.at(-1)).toBe('[DONE]');
    }

    // Meanwhile the other engine serves, and /health says degraded.
    const during = await health(server.url);
    expect(during.status).toBe('degraded');
    expect(during.engines[0]!.state).not.toBe('ready');
    const served = await postJson(`${server.url}/v1/completions`, { prompt: 'still here', max_tokens: 4 });
    expect(served.status).toBe(200);

    const back = await until(
      'engine 0 back',
      when(
        () => health(server.url),
        (x) => x.status === 'ok',
      ),
    );
    expect(back.engines[0]!.pid).not.toBe(victim.pid);
    expect(back.engines[0]!.restarts).toBe(1);
    expect(environOf(back.engines[0]!.pid).CUDA_VISIBLE_DEVICES).toBe('0');
    // The restarted engine serves again.
    const again = await Promise.all(
      Array.from({ length: 4 }, () => postJson(`${server.url}/v1/completions`, { prompt: 'again', max_tokens: 3 })),
    );
    expect(again.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    await waitIdle(server.url);

    const after = await scrape(server.url);
    expect(value(after, 'qwen_engine_restarts_total', { engine: '0' })).toBe(1);
    expect(value(after, 'qwen_engine_restarts_total', { engine: '1' })).toBe(0);
    expect(
      value(after, 'qwen_requests_finished_total', { finish_reason: 'error' }) -
        value(before, 'qwen_requests_finished_total', { finish_reason: 'error' }),
    ).toBe(2);
    const a = cumulativeSamples(before);
    const b = cumulativeSamples(after);
    const dipped = [...a].filter(([key, v]) => !((b.get(key) ?? -1) >= v));
    expect(dipped).toEqual([]);
    // Engine 0's series still exist after the restart (baseline + the new process).
    expect(value(after, 'qwen_request_generation_tokens_count', { engine: '0' })).toBeGreaterThanOrEqual(
      value(before, 'qwen_request_generation_tokens_count', { engine: '0' }),
    );
  });
});

describe('GPU series with engine processes (NVML stub, 2 devices)', () => {
  let dir: string;
  let library: string;
  const env = {
    NVML_STUB_DEVICE_COUNT: '2',
    NVML_STUB_MEM_TOTAL_0: '85899345920',
    NVML_STUB_MEM_USED_0: '6442450944',
    NVML_STUB_NAME_0: 'NVIDIA H200',
    NVML_STUB_UUID_0: 'GPU-aaaa-0000',
    NVML_STUB_MEM_TOTAL_1: '25769803776',
    NVML_STUB_MEM_USED_1: '4294967297',
    NVML_STUB_NAME_1: 'NVIDIA L4',
    NVML_STUB_UUID_1: 'GPU-bbbb-1111',
  };
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-engines-nvml-'));
    library = buildNvmlStub(dir);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs `check` against a server started with these flags once every engine is ready, then stops it (exit 0). */
  async function withEngines(
    args: string[],
    check: (server: TestServer, ready: Health & { engines: EngineHealth[] }) => Promise<void>,
  ): Promise<void> {
    const server = await startServer([...args, '--gpu', 'off', '--nvml-library', library], { env });
    try {
      await check(
        server,
        await until(
          'every engine ready',
          when(
            () => health(server.url),
            (x) => x.status === 'ok',
          ),
        ),
      );
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }

  it('--gpus all: one engine per device NVML reports, and each GPU series names its engine', () =>
    withEngines(['--gpus', 'all'], async (server, h) => {
      expect(h.engines.map((e) => [e.device, e.cudaVisibleDevices])).toEqual([
        ['cuda:0', '0'],
        ['cuda:1', '1'],
      ]);
      const s = await scrape(server.url);
      expect(value(s, 'qwen_gpu_memory_usage_bytes', { device: 'cuda:0', engine: '0' })).toBe(6442450944);
      expect(value(s, 'qwen_gpu_memory_usage_bytes', { device: 'cuda:1', engine: '1' })).toBe(4294967297);
      expect(value(s, 'qwen_gpu_memory_total_bytes', { device: 'cuda:1', engine: '1' })).toBe(25769803776);
      expect(value(s, 'qwen_gpu_info', { device: 'cuda:0', engine: '0', name: 'NVIDIA H200' })).toBe(1);
      expect(s.filter((x) => x.name === 'qwen_gpu_memory_usage_bytes')).toHaveLength(2);
      // The engine series name the same device, so they join with the GPU series on `device`.
      const kv = s.filter((x) => x.name === 'qwen_kv_cache_usage_ratio').map((x) => x.labels.device);
      expect(kv.sort()).toEqual(['cuda:0', 'cuda:1']);
    }));

  it('--gpus 1 --engines 2: both engines on GPU 1; GPU 0 is not reported', () =>
    withEngines(['--gpus', '1', '--engines', '2'], async (server, h) => {
      expect(h.engines.map((e) => [e.device, e.cudaVisibleDevices])).toEqual([
        ['cuda:1', '1'],
        ['cuda:1', '1'],
      ]);
      const gpu = (await scrape(server.url)).filter((x) => x.name === 'qwen_gpu_memory_usage_bytes');
      expect(gpu).toEqual([{ name: 'qwen_gpu_memory_usage_bytes', labels: { device: 'cuda:1', engine: '0,1' }, value: 4294967297 }]);
    }));

  it('--gpus all without NVML is refused at start with a message naming the flag', async () => {
    await expect(startServer(['--gpus', 'all', '--nvml-library', path.join(dir, 'missing.so')])).rejects.toThrow(/--gpus all needs NVML/);
  });
});

describe('a model that cannot be loaded', () => {
  // --drain-timeout 600: the exit must not wait out a drain that has nothing to drain (the 60 s test timeout would fail).
  it.each([
    ['in-process', []],
    ['engine processes', ['--engines', '2']],
  ])('%s: stops the server with exit 1 naming the problem, and leaves no engine process behind', async (_mode, args) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-bad-model-'));
    try {
      const bad = path.join(dir, 'bad.gguf');
      fs.writeFileSync(bad, Buffer.alloc(4096, 7));
      const server = await startServer([...args, '--model', bad, '--drain-timeout', '600'], { waitReady: false });
      expect(await server.exited).toBe(1);
      const failed = server.logs.find((l) => l.msg === 'a model could not be loaded');
      expect(String(failed?.message)).toMatch(/GGUF/);
      const pids = server.logs.filter((l) => l.msg === 'engine process started').map((l) => l.pid as number);
      expect(pids).toHaveLength(args.length === 0 ? 0 : 2);
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
