/**
 * GPU stats read from NVIDIA's NVML (libnvidia-ml) through ffi-rs, for the metrics scrape.
 *
 * Main thread only: ffi-rs library keys are process-global, so the library is opened once, here, and closed only by close().
 *
 * How values cross ffi-rs (1.3.7, measured):
 * - Every out-param (the count, the device handle, nvmlMemory_t, nvmlUtilization_t, the name and uuid char arrays) is a Node
 *   Buffer passed as DataType.U8Array: ffi-rs hands C the Buffer's own memory, so what C writes lands in it, and the GC owns it.
 *   createPointer/restorePointer would work too, but every JsExternal they make leaks ~200 bytes, once per scrape, forever.
 * - nvmlDevice_t (an opaque pointer) is read out of its 8-byte Buffer and passed back as DataType.BigInt (an int64): a pointer
 *   and an int64 go in the same register on every 64-bit ABI NVML ships for, and no JsExternal is created.
 * - Structs are read at their C offsets, little-endian: NVML exists only for x86_64, aarch64 and ppc64le, all little-endian.
 */
import { isMainThread } from 'node:worker_threads';
import { DataType, close as ffiClose, load, open as ffiOpen } from 'ffi-rs';
import type { Logger } from 'pino';

/** One device. A value whose NVML call failed is NaN (numbers) or '' (strings, which are label values): skip NaN when exporting. */
export interface GpuDeviceStats {
  index: number; // NVML device index
  device: string; // label value, `cuda:${index}`
  name: string; // nvmlDeviceGetName
  uuid: string; // nvmlDeviceGetUUID
  memoryUsedBytes: number; // nvmlDeviceGetMemoryInfo .used
  memoryTotalBytes: number; // .total
  utilizationRatio: number; // nvmlDeviceGetUtilizationRates .gpu / 100
}

/** What the metrics read from NVML at scrape time (Nvml implements it). */
export interface GpuReader {
  devices(): GpuDeviceStats[];
  /**
   * Failed reads since start, cumulative, by what failed: an NVML function (a call that returned an error or
   * threw), or `read` (the read failed outside any call). Every kind is present from the start, at 0.
   */
  readErrors(): ReadonlyMap<string, number>;
}

export interface NvmlOptions {
  /** How long devices() reuses its last read, in ms (default 1000), so scrapes within a second cost one NVML round. */
  cacheMs?: number;
  /** The ffi-rs library key (default 'qwen-serve-nvml'). Keys are process-global: two live instances need two keys. */
  libraryKey?: string;
  /** Milliseconds for the cache's age (default performance.now); tests pass their own clock. */
  clock?: () => number;
}

const DEFAULT_LIBRARY = 'libnvidia-ml.so.1';
const DEFAULT_KEY = 'qwen-serve-nvml';
const DEFAULT_CACHE_MS = 1000;
const NVML_SUCCESS = 0;
const NAME_BUFFER_SIZE = 96; // NVML_DEVICE_NAME_V2_BUFFER_SIZE
const UUID_BUFFER_SIZE = 96; // NVML_DEVICE_UUID_V2_BUFFER_SIZE
const MEMORY_SIZE = 24; // nvmlMemory_t { unsigned long long total, free, used }
const MEMORY_TOTAL_OFFSET = 0;
const MEMORY_USED_OFFSET = 16;
const UTILIZATION_SIZE = 8; // nvmlUtilization_t { unsigned int gpu, memory }

const SYMBOLS = [
  'nvmlInit_v2',
  'nvmlShutdown',
  'nvmlErrorString',
  'nvmlDeviceGetCount_v2',
  'nvmlDeviceGetHandleByIndex_v2',
  'nvmlDeviceGetMemoryInfo',
  'nvmlDeviceGetUtilizationRates',
  'nvmlDeviceGetName',
  'nvmlDeviceGetUUID',
] as const;
type NvmlFunction = (typeof SYMBOLS)[number];

/** What a scrape's read can fail at: the device calls it makes (every nvmlDevice* symbol), or the read as a whole. */
const READ_FAILURES = [...SYMBOLS.filter((s) => s.startsWith('nvmlDevice')), 'read'];

export class Nvml implements GpuReader {
  private cache: { at: number; stats: GpuDeviceStats[] } | undefined;
  private closed = false;
  private readonly failures = new Map<string, number>(READ_FAILURES.map((f) => [f, 0]));
  /** Kinds of failure already warned about (what failed, and how): each is warned once, then logged at debug. */
  private readonly warned = new Set<string>();

  private constructor(
    private readonly log: Logger,
    private readonly key: string,
    private readonly cacheMs: number,
    private readonly clock: () => number,
  ) {}

  /**
   * Opens the library (default 'libnvidia-ml.so.1', else the given path) and calls nvmlInit_v2.
   * No library, a missing symbol, or an init error: logs ONE line saying GPU metrics are off and why, returns undefined.
   * Never throws.
   */
  static open(log: Logger, libraryPath: string = DEFAULT_LIBRARY, options: NvmlOptions = {}): Nvml | undefined {
    const key = options.libraryKey ?? DEFAULT_KEY;
    // No NVML is the normal state of a CPU-only host (info); a broken one deserves a warning.
    const off = (level: 'info' | 'warn', reason: string): undefined => {
      log[level]({ library: libraryPath }, `GPU metrics off: ${reason}`);
      return undefined;
    };
    if (!isMainThread) return off('warn', 'NVML may only be opened from the main thread (ffi-rs library keys are process-global)');
    try {
      ffiOpen({ library: key, path: libraryPath }); // throws synchronously when dlopen fails
    } catch (err) {
      return off('info', `cannot load NVML: ${message(err)}`); // dlerror's text names the path
    }
    try {
      // ffi-rs only notices a missing symbol when it is called: check them all now rather than halfway through a scrape.
      const missing = SYMBOLS.filter((name) => !hasSymbol(key, name));
      if (missing.length > 0) {
        ffiClose(key);
        return off('warn', `${libraryPath} lacks ${missing.join(', ')}`);
      }
      const nvml = new Nvml(log, key, options.cacheMs ?? DEFAULT_CACHE_MS, options.clock ?? (() => performance.now()));
      const rc = nvml.call('nvmlInit_v2', [], []);
      if (rc !== NVML_SUCCESS) {
        const reason = `nvmlInit_v2 failed: ${nvml.errorString(rc)} (${rc})`;
        ffiClose(key);
        return off('warn', reason);
      }
      log.info({ library: libraryPath }, 'GPU metrics on: NVML initialised');
      return nvml;
    } catch (err) {
      try {
        ffiClose(key);
      } catch {
        // already closed or never opened: nothing left to release
      }
      return off('warn', `NVML error: ${message(err)}`);
    }
  }

  /**
   * Reads every device; the result is reused for cacheMs so scrapes in the same second cost one NVML round (do not mutate it).
   * A failing call leaves just its value NaN (or '') and is counted (readErrors); no handle skips the device, a failed count
   * reads no device. Each kind of failure is warned about once, later ones logged at debug. Never throws; [] once closed.
   */
  devices(): GpuDeviceStats[] {
    if (this.closed) return [];
    const now = this.clock();
    if (this.cache !== undefined && now - this.cache.at < this.cacheMs) return this.cache.stats;
    let stats: GpuDeviceStats[];
    try {
      stats = this.read();
    } catch (err) {
      this.failed('read', { err: message(err) }, 'NVML read failed', 'read');
      stats = [];
    }
    this.cache = { at: now, stats };
    return stats;
  }

  readErrors(): ReadonlyMap<string, number> {
    return this.failures;
  }

  /** Counts a failed read and logs it: a warning the first time this `kind` of failure happens, debug after. */
  private failed(what: NvmlFunction | 'read', fields: Record<string, unknown>, msg: string, kind: string): void {
    this.failures.set(what, (this.failures.get(what) ?? 0) + 1);
    const first = !this.warned.has(kind);
    this.warned.add(kind);
    if (first) this.log.warn({ ...fields, note: 'further failures of this kind are logged at debug level' }, msg);
    else this.log.debug(fields, msg);
  }

  /** nvmlShutdown and close the ffi-rs library key; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cache = undefined;
    this.ok('nvmlShutdown', undefined, [], [], false);
    try {
      ffiClose(this.key);
    } catch (err) {
      this.log.debug({ err: message(err) }, 'closing the NVML library failed');
    }
  }

  private read(): GpuDeviceStats[] {
    const countOut = Buffer.alloc(4);
    if (!this.ok('nvmlDeviceGetCount_v2', undefined, [DataType.U8Array], [countOut])) return [];
    const count = countOut.readUInt32LE(0);
    const stats: GpuDeviceStats[] = [];
    for (let index = 0; index < count; index++) {
      const handleOut = Buffer.alloc(8);
      // Without a handle there is nothing to read for this device.
      if (!this.ok('nvmlDeviceGetHandleByIndex_v2', index, [DataType.U32, DataType.U8Array], [index, handleOut])) continue;
      const handle = handleOut.readBigInt64LE(0);
      const device: GpuDeviceStats = {
        index,
        device: `cuda:${index}`,
        name: this.string('nvmlDeviceGetName', index, handle, NAME_BUFFER_SIZE),
        uuid: this.string('nvmlDeviceGetUUID', index, handle, UUID_BUFFER_SIZE),
        memoryUsedBytes: NaN,
        memoryTotalBytes: NaN,
        utilizationRatio: NaN,
      };
      const memory = Buffer.alloc(MEMORY_SIZE);
      if (this.ok('nvmlDeviceGetMemoryInfo', index, [DataType.BigInt, DataType.U8Array], [handle, memory])) {
        // Number() is exact below 2^53 bytes (8 PiB).
        device.memoryUsedBytes = Number(memory.readBigUInt64LE(MEMORY_USED_OFFSET));
        device.memoryTotalBytes = Number(memory.readBigUInt64LE(MEMORY_TOTAL_OFFSET));
      }
      const utilization = Buffer.alloc(UTILIZATION_SIZE);
      if (this.ok('nvmlDeviceGetUtilizationRates', index, [DataType.BigInt, DataType.U8Array], [handle, utilization])) {
        device.utilizationRatio = utilization.readUInt32LE(0) / 100;
      }
      stats.push(device);
    }
    return stats;
  }

  /** A char-array out-param (name, uuid): NVML writes a NUL-terminated string into the Buffer. */
  private string(fn: NvmlFunction, index: number, handle: bigint, size: number): string {
    const out = Buffer.alloc(size);
    if (!this.ok(fn, index, [DataType.BigInt, DataType.U8Array, DataType.U32], [handle, out, size])) return '';
    const end = out.indexOf(0);
    return out.toString('utf8', 0, end === -1 ? size : end);
  }

  /**
   * Calls an NVML function that returns nvmlReturn_t: true on NVML_SUCCESS, else false, and the failure is counted and
   * logged (`read`: a call of a scrape's read; nvmlShutdown's failure is only logged at debug).
   */
  private ok(fn: NvmlFunction, index: number | undefined, paramsType: DataType[], paramsValue: unknown[], read = true): boolean {
    let rc: number;
    try {
      rc = this.call(fn, paramsType, paramsValue);
    } catch (err) {
      if (read) this.failed(fn, { fn, index, err: message(err) }, 'NVML call threw', `${fn} threw`);
      else this.log.debug({ fn, index, err: message(err) }, 'NVML call threw');
      return false;
    }
    if (rc === NVML_SUCCESS) return true;
    const fields = { fn, index, code: rc, error: this.errorString(rc) };
    if (read) this.failed(fn, fields, 'NVML call failed', `${fn} ${rc}`);
    else this.log.debug(fields, 'NVML call failed');
    return false;
  }

  private call(fn: NvmlFunction, paramsType: DataType[], paramsValue: unknown[]): number {
    return load({ library: this.key, funcName: fn, retType: DataType.I32, paramsType, paramsValue });
  }

  private errorString(rc: number): string {
    try {
      // A static string inside NVML: ffi-rs copies it and, with freeResultMemory off (its default), never frees it.
      return load({
        library: this.key,
        funcName: 'nvmlErrorString',
        retType: DataType.String,
        paramsType: [DataType.I32],
        paramsValue: [rc],
      });
    } catch {
      return `NVML error ${rc}`;
    }
  }
}

/**
 * Whether the library exports `name`, without calling it: ffi-rs (1.3.7) resolves the symbol before it converts the arguments,
 * so a call with one argument type and no value fails with "Cannot find ..." when the symbol is missing and with an argument
 * error, before any call, when it is there.
 */
function hasSymbol(key: string, name: string): boolean {
  try {
    load({ library: key, funcName: name, retType: DataType.I32, paramsType: [DataType.I32], paramsValue: [] });
  } catch (err) {
    return !/cannot find/i.test(message(err));
  }
  return true;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
