import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Nvml, type NvmlOptions } from '../src/gpu/nvml.js';
import { MainMetrics } from '../src/metrics/main-metrics.js';
import { buildNvmlStub } from './helpers/nvml-stub.js';
import { parseExposition, value } from './helpers/prom.js';

const GiB = 1024 ** 3;
let dir: string;
let lib: string;
const opened: Nvml[] = [];

/** A debug-level pino logger whose lines land, parsed, in `lines`. */
function capture() {
  const lines: Array<Record<string, unknown> & { level: number; msg: string }> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

function open(options: NvmlOptions = { cacheMs: 0 }, library = lib) {
  const { log, lines } = capture();
  const nvml = Nvml.open(log, library, options);
  if (nvml) opened.push(nvml);
  return { nvml, lines };
}

/** Lines the stub appended to NVML_STUB_CALL_LOG. */
function calls(file: string): string[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-nvml-'));
  lib = buildNvmlStub(path.join(dir, 'stub'));
});

afterEach(() => {
  // The stub reads these with getenv at call time: no test may leak them into the next.
  for (const k of Object.keys(process.env)) if (k.startsWith('NVML_STUB_')) delete process.env[k];
  for (const n of opened.splice(0)) n.close();
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('Nvml with the stub library', () => {
  it('reports both devices exactly as the library does', () => {
    const { nvml, lines } = open();
    expect(nvml).toBeDefined();
    expect(lines.map((l) => l.msg)).toEqual(['GPU metrics on: NVML initialised']);
    expect(nvml!.devices()).toEqual([
      {
        index: 0,
        device: 'cuda:0',
        name: 'Stub GPU 0',
        uuid: 'GPU-stub-0000',
        memoryUsedBytes: 5 * GiB + 12345,
        memoryTotalBytes: 80 * GiB,
        utilizationRatio: 0.17,
      },
      {
        index: 1,
        device: 'cuda:1',
        name: 'Stub GPU 1',
        uuid: 'GPU-stub-0001',
        memoryUsedBytes: 10 * GiB + 12345,
        memoryTotalBytes: 80 * GiB,
        utilizationRatio: 0.27,
      },
    ]);
  });

  it('passes 64-bit memory values, full-length and UTF-8 strings through unchanged', () => {
    const longName = 'N'.repeat(95); // NVML_DEVICE_NAME_V2_BUFFER_SIZE (96) less the NUL
    Object.assign(process.env, {
      NVML_STUB_DEVICE_COUNT: '1',
      NVML_STUB_MEM_TOTAL_0: String(2 ** 40 + 7),
      NVML_STUB_MEM_USED_0: String(2 ** 52 + 3),
      NVML_STUB_UTIL_0: '100',
      NVML_STUB_NAME_0: longName,
      NVML_STUB_UUID_0: 'GPU-ünïcode-ß',
    });
    const { nvml } = open();
    expect(nvml!.devices()).toEqual([
      {
        index: 0,
        device: 'cuda:0',
        name: longName,
        uuid: 'GPU-ünïcode-ß',
        memoryUsedBytes: 2 ** 52 + 3,
        memoryTotalBytes: 2 ** 40 + 7,
        utilizationRatio: 1,
      },
    ]);
  });

  it('reports no devices when there are none', () => {
    process.env.NVML_STUB_DEVICE_COUNT = '0';
    expect(open().nvml!.devices()).toEqual([]);
  });

  it('keeps the other values and the other device when one device memory call fails', () => {
    process.env.NVML_STUB_FAIL_MEMORY_0 = '1';
    const { nvml, lines } = open();
    const [d0, d1] = nvml!.devices();
    expect(d0).toMatchObject({ index: 0, name: 'Stub GPU 0', uuid: 'GPU-stub-0000', utilizationRatio: 0.17 });
    expect(d0!.memoryUsedBytes).toBeNaN();
    expect(d0!.memoryTotalBytes).toBeNaN();
    expect(d1).toMatchObject({ index: 1, memoryUsedBytes: 10 * GiB + 12345, memoryTotalBytes: 80 * GiB, utilizationRatio: 0.27 });
    const failed = lines.filter((l) => l.msg === 'NVML call failed');
    expect(failed).toEqual([
      expect.objectContaining({ level: 40, fn: 'nvmlDeviceGetMemoryInfo', index: 0, code: 999, error: 'Unknown Error' }),
    ]);
  });

  it('counts every failed read by NVML function and warns once per kind of failure, later ones at debug', () => {
    process.env.NVML_STUB_FAIL_MEMORY_0 = '1';
    const { nvml, lines } = open();
    expect([...nvml!.readErrors().values()].every((n) => n === 0)).toBe(true);
    for (let i = 0; i < 3; i++) nvml!.devices();
    expect(nvml!.readErrors().get('nvmlDeviceGetMemoryInfo')).toBe(3);
    expect([...nvml!.readErrors()].filter(([, n]) => n > 0)).toEqual([['nvmlDeviceGetMemoryInfo', 3]]);
    const failed = lines.filter((l) => l.msg === 'NVML call failed');
    expect(failed.map((l) => l.level)).toEqual([40, 20, 20]);
    // Another device failing the same way is the same kind of failure: counted, not warned again.
    process.env.NVML_STUB_FAIL_MEMORY_1 = '1';
    nvml!.devices();
    expect(nvml!.readErrors().get('nvmlDeviceGetMemoryInfo')).toBe(5);
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
  });

  it('exports the count as qwen_gpu_read_errors_total{call}, every call at 0 from the start', async () => {
    const { nvml } = open();
    const metrics = new MainMetrics({
      version: 'test',
      timeBuckets: [1],
      models: [],
      routes: [],
      gpu: nvml,
    });
    const scrape = async () => parseExposition(await metrics.registry.metrics());
    const before = await scrape();
    expect(before.filter((s) => s.name === 'qwen_gpu_read_errors_total').map((s) => [s.labels.call, s.value])).toContainEqual([
      'nvmlDeviceGetMemoryInfo',
      0,
    ]);
    expect(value(before, 'qwen_gpu_read_errors_total')).toBe(0);
    process.env.NVML_STUB_FAIL_MEMORY_0 = '1';
    const after = await scrape();
    // The scrape counts the failure of its own read, and the series NVML could not read are gone.
    expect(value(after, 'qwen_gpu_read_errors_total', { call: 'nvmlDeviceGetMemoryInfo' })).toBe(1);
    expect(value(after, 'qwen_gpu_read_errors_total')).toBe(1);
    expect(after.filter((s) => s.name === 'qwen_gpu_memory_usage_bytes').map((s) => s.labels.device)).toEqual(['cuda:1']);
  });

  it('reads the library once per cache period', () => {
    const log = path.join(dir, 'calls-cache.log');
    process.env.NVML_STUB_CALL_LOG = log;
    let now = 1000;
    const { nvml } = open({ cacheMs: 150, clock: () => now });
    const memoryCalls = () => calls(log).filter((l) => l.startsWith('memory ')).length;
    const first = nvml!.devices();
    now += 149;
    expect(nvml!.devices()).toBe(first);
    expect(memoryCalls()).toBe(2); // one round: one call per device
    process.env.NVML_STUB_UTIL_0 = '55';
    now += 1;
    const second = nvml!.devices();
    expect(memoryCalls()).toBe(4);
    expect(second[0]!.utilizationRatio).toBe(0.55);
  });

  it('close() shuts NVML down once, frees the key for a new instance, and leaves devices() empty', () => {
    const log = path.join(dir, 'calls-close.log');
    process.env.NVML_STUB_CALL_LOG = log;
    const { nvml } = open();
    nvml!.close();
    nvml!.close();
    expect(calls(log)).toEqual(['init', 'shutdown']);
    expect(nvml!.devices()).toEqual([]);
    const again = open().nvml; // same default key, opened again after close
    expect(again!.devices()).toHaveLength(2);
  });

  it('runs two instances side by side under different library keys', () => {
    const other = buildNvmlStub(path.join(dir, 'other'));
    const a = open({ cacheMs: 0 }).nvml;
    const b = open({ cacheMs: 0, libraryKey: 'qwen-serve-nvml-test-b' }, other).nvml;
    expect(b!.devices()).toEqual(a!.devices());
    b!.close();
    expect(a!.devices()).toHaveLength(2);
  });

  it('survives many reads without crashing or drifting', () => {
    const { nvml } = open();
    const first = nvml!.devices();
    for (let i = 0; i < 1000; i++) expect(nvml!.devices()).toEqual(first);
  });
});

describe('Nvml.open when GPU metrics are unavailable', () => {
  it('returns undefined and logs one info line when the library is missing', () => {
    const { nvml, lines } = open(undefined, path.join(dir, 'nowhere', 'libnvidia-ml.so.1'));
    expect(nvml).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe(30);
    expect(lines[0]!.msg).toMatch(/^GPU metrics off: cannot load .*nowhere.*No such file/);
  });

  it('returns undefined and logs one warning naming the error when nvmlInit_v2 fails', () => {
    const log = path.join(dir, 'calls-init.log');
    Object.assign(process.env, { NVML_STUB_INIT_ERROR: '9', NVML_STUB_CALL_LOG: log });
    const { nvml, lines } = open();
    expect(nvml).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: 'GPU metrics off: nvmlInit_v2 failed: Driver Not Loaded (9)' });
    expect(calls(log)).toEqual(['init']); // no shutdown after a failed init
  });

  it('returns undefined and logs one warning naming the symbol when the library lacks one', () => {
    const partial = buildNvmlStub(path.join(dir, 'no-uuid'), ['NVML_STUB_WITHOUT_UUID']);
    const log = path.join(dir, 'calls-symbol.log');
    process.env.NVML_STUB_CALL_LOG = log;
    const { nvml, lines } = open(undefined, partial);
    expect(nvml).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: expect.stringMatching(/^GPU metrics off: .* lacks nvmlDeviceGetUUID$/) });
    expect(calls(log)).toEqual([]); // the probe resolves symbols without calling any
  });
});
