/**
 * GPU series through NVML, end to end: a server started with the stub libnvidia-ml (2 fake devices)
 * exports exactly the stub's values; an init error leaves the GPU series out and scrapes working.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNvmlStub } from './helpers/nvml-stub.js';
import { scrape, value } from './helpers/prom.js';
import { startServer, type TestServer } from './helpers/server.js';

let dir: string;
let library: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-nvml-'));
  library = buildNvmlStub(dir);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('with the NVML stub', () => {
  let server: TestServer;
  const env = {
    NVML_STUB_DEVICE_COUNT: '2',
    NVML_STUB_MEM_TOTAL_0: '85899345920',
    NVML_STUB_MEM_USED_0: '6442450944',
    NVML_STUB_UTIL_0: '37',
    NVML_STUB_NAME_0: 'NVIDIA H200',
    NVML_STUB_UUID_0: 'GPU-aaaa-0000',
    NVML_STUB_MEM_TOTAL_1: '25769803776',
    NVML_STUB_MEM_USED_1: '4294967297',
    NVML_STUB_UTIL_1: '100',
    NVML_STUB_NAME_1: 'NVIDIA L4',
    NVML_STUB_UUID_1: 'GPU-bbbb-1111',
  };

  beforeAll(async () => {
    server = await startServer(['--nvml-library', library], { env });
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('exports exactly the values NVML reports, per device', async () => {
    const s = await scrape(server.url);
    expect(value(s, 'qwen_gpu_memory_usage_bytes', { device: 'cuda:0' })).toBe(6442450944);
    expect(value(s, 'qwen_gpu_memory_usage_bytes', { device: 'cuda:1' })).toBe(4294967297);
    expect(value(s, 'qwen_gpu_memory_total_bytes', { device: 'cuda:0' })).toBe(85899345920);
    expect(value(s, 'qwen_gpu_memory_total_bytes', { device: 'cuda:1' })).toBe(25769803776);
    expect(value(s, 'qwen_gpu_utilization_ratio', { device: 'cuda:0' })).toBe(0.37);
    expect(value(s, 'qwen_gpu_utilization_ratio', { device: 'cuda:1' })).toBe(1);
    expect(value(s, 'qwen_gpu_info', { device: 'cuda:0', name: 'NVIDIA H200', uuid: 'GPU-aaaa-0000' })).toBe(1);
    expect(value(s, 'qwen_gpu_info', { device: 'cuda:1', name: 'NVIDIA L4', uuid: 'GPU-bbbb-1111' })).toBe(1);
    expect(s.filter((x) => x.name === 'qwen_gpu_memory_usage_bytes')).toHaveLength(2);
  });
});

describe('when nvmlInit_v2 fails', () => {
  it('logs one line, exports no GPU series, and scrapes succeed', async () => {
    const server = await startServer(['--nvml-library', library], { env: { NVML_STUB_INIT_ERROR: '9' } });
    try {
      const s = await scrape(server.url);
      expect(s.some((x) => x.name.startsWith('qwen_gpu_'))).toBe(false);
      expect(value(s, 'qwen_workers_ready')).toBe(1);
      const lines = server.logs.filter((l) => String(l.msg).includes('GPU metrics off'));
      expect(lines).toHaveLength(1);
      expect(String(lines[0]!.msg)).toContain('nvmlInit_v2');
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
