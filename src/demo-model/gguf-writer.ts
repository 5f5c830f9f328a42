/**
 * A small, generic GGUF v3 writer.
 *
 * Layout (all little-endian):
 *   magic "GGUF", u32 version = 3, u64 tensor_count, u64 kv_count,
 *   kv_count × (string key, u32 value type, value),
 *   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset),
 *   padding to `general.alignment`, then the tensor data, each tensor starting aligned.
 *
 * Tensor data is produced chunk by chunk by each tensor's `data()` generator and
 * streamed to the file, so multi-hundred-MB models never live in memory at once.
 */
import { open, rm } from 'node:fs/promises';
import { endianness } from 'node:os';
import { encodeTensorChunk, GGML_BLOCK_SIZE, GGML_TYPE_BYTES, GgmlType } from './ggml-encode.js';

export { f16ToF32, f32ToF16, GgmlType } from './ggml-encode.js';

/** GGUF metadata value types. */
export enum GgufType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

type ScalarType = Exclude<GgufType, GgufType.ARRAY>;
type Scalar = number | bigint | boolean | string;

export type GgufValue = { type: ScalarType; value: Scalar } | { type: GgufType.ARRAY; itemType: ScalarType; values: ArrayLike<Scalar> };

/** Helpers to build typed metadata values. */
export const gguf = {
  u8: (v: number): GgufValue => ({ type: GgufType.UINT8, value: v }),
  i8: (v: number): GgufValue => ({ type: GgufType.INT8, value: v }),
  u16: (v: number): GgufValue => ({ type: GgufType.UINT16, value: v }),
  i16: (v: number): GgufValue => ({ type: GgufType.INT16, value: v }),
  u32: (v: number): GgufValue => ({ type: GgufType.UINT32, value: v }),
  i32: (v: number): GgufValue => ({ type: GgufType.INT32, value: v }),
  u64: (v: number | bigint): GgufValue => ({ type: GgufType.UINT64, value: v }),
  i64: (v: number | bigint): GgufValue => ({ type: GgufType.INT64, value: v }),
  f32: (v: number): GgufValue => ({ type: GgufType.FLOAT32, value: v }),
  f64: (v: number): GgufValue => ({ type: GgufType.FLOAT64, value: v }),
  bool: (v: boolean): GgufValue => ({ type: GgufType.BOOL, value: v }),
  str: (v: string): GgufValue => ({ type: GgufType.STRING, value: v }),
  arr: (itemType: ScalarType, values: ArrayLike<Scalar>): GgufValue => ({ type: GgufType.ARRAY, itemType, values }),
};

export interface GgufTensor {
  name: string;
  /** ggml order: shape[0] (ne[0]) is the contiguous, innermost dimension. */
  shape: readonly number[];
  type: GgmlType;
  /**
   * Yields the tensor's values in memory order (ne[0] fastest). Every chunk's length
   * must be a multiple of the type's block size (32 for Q8_0); the total must equal
   * the product of the shape. Chunks may be reused buffers: each one is consumed
   * before the next is requested.
   */
  data: () => Iterable<Float32Array>;
}

export interface GgufFile {
  /** Metadata in write order. `general.alignment` (u32) is added when absent. */
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensor[];
}

export function tensorElements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes of a tensor's data (before alignment padding). */
function tensorBytes(t: Pick<GgufTensor, 'shape' | 'type'>): number {
  return (tensorElements(t.shape) / GGML_BLOCK_SIZE[t.type]) * GGML_TYPE_BYTES[t.type];
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }

  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    this.ensure(n);
    this.buf.write(s, this.length, 'utf8');
    this.length += n;
  }

  scalar(type: ScalarType, v: Scalar): void {
    const num = (): number => {
      if (typeof v !== 'number') throw new TypeError(`expected a number for GGUF type ${GgufType[type]}, got ${typeof v}`);
      return v;
    };
    this.ensure(8);
    const b = this.buf;
    const at = this.length;
    switch (type) {
      case GgufType.UINT8:
        b.writeUInt8(num(), at);
        this.length += 1;
        break;
      case GgufType.INT8:
        b.writeInt8(num(), at);
        this.length += 1;
        break;
      case GgufType.UINT16:
        b.writeUInt16LE(num(), at);
        this.length += 2;
        break;
      case GgufType.INT16:
        b.writeInt16LE(num(), at);
        this.length += 2;
        break;
      case GgufType.UINT32:
        b.writeUInt32LE(num(), at);
        this.length += 4;
        break;
      case GgufType.INT32:
        b.writeInt32LE(num(), at);
        this.length += 4;
        break;
      case GgufType.FLOAT32:
        b.writeFloatLE(num(), at);
        this.length += 4;
        break;
      case GgufType.FLOAT64:
        b.writeDoubleLE(num(), at);
        this.length += 8;
        break;
      case GgufType.UINT64:
        b.writeBigUInt64LE(BigInt(v), at);
        this.length += 8;
        break;
      case GgufType.INT64:
        b.writeBigInt64LE(BigInt(v), at);
        this.length += 8;
        break;
      case GgufType.BOOL:
        b.writeUInt8(v === true ? 1 : 0, at);
        this.length += 1;
        break;
      case GgufType.STRING:
        if (typeof v !== 'string') throw new TypeError('expected a string');
        this.str(v);
        break;
    }
  }

  value(v: GgufValue): void {
    this.u32(v.type);
    if (v.type === GgufType.ARRAY) {
      this.u32(v.itemType);
      this.u64(v.values.length);
      for (let i = 0; i < v.values.length; i++) this.scalar(v.itemType, v.values[i]!);
    } else {
      this.scalar(v.type, v.value);
    }
  }

  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

export interface WriteGgufResult {
  /** Total file size in bytes. */
  bytes: number;
  /** Offset of the tensor data section. */
  dataOffset: number;
}

/** Writes a GGUF v3 file, streaming tensor data through a file handle. */
export async function writeGguf(path: string, file: GgufFile): Promise<WriteGgufResult> {
  if (endianness() !== 'LE') throw new Error('writeGguf only supports little-endian hosts');
  const metadata = [...file.metadata];
  const alignEntry = metadata.find(([k]) => k === 'general.alignment');
  if (alignEntry == null) metadata.push(['general.alignment', gguf.u32(32)]);
  const alignment = alignEntry != null && alignEntry[1].type !== GgufType.ARRAY ? Number(alignEntry[1].value) : 32;
  if (!(alignment > 0 && alignment % 8 === 0)) throw new Error(`invalid general.alignment ${alignment}`);

  const seen = new Set<string>();
  for (const [key] of metadata) {
    if (seen.has(key)) throw new Error(`duplicate metadata key ${key}`);
    seen.add(key);
  }

  const h = new ByteWriter();
  h.u32(0x46554747); // "GGUF"
  h.u32(3);
  h.u64(file.tensors.length);
  h.u64(metadata.length);
  for (const [key, value] of metadata) {
    h.str(key);
    h.value(value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of file.tensors) {
    if (t.shape.length < 1 || t.shape.length > 4) throw new Error(`${t.name}: 1..4 dims required`);
    if (t.shape[0]! % GGML_BLOCK_SIZE[t.type] !== 0)
      throw new Error(`${t.name}: ne[0]=${t.shape[0]} is not a multiple of the ${GgmlType[t.type]} block size`);
    h.str(t.name);
    h.u32(t.shape.length);
    for (const d of t.shape) h.u64(d);
    h.u32(t.type);
    h.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + tensorBytes(t), alignment);
  }
  h.zeros(alignUp(h.length, alignment) - h.length);
  const dataOffset = h.length;

  const fh = await open(path, 'w');
  let ok = false;
  try {
    let pos = 0;
    const write = async (buf: Uint8Array): Promise<void> => {
      let done = 0;
      while (done < buf.length) {
        const { bytesWritten } = await fh.write(buf, done, buf.length - done, pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    };
    await write(h.bytes());

    const OUT_SIZE = 4 << 20;
    let out = Buffer.alloc(OUT_SIZE);
    let used = 0;
    const flush = async (): Promise<void> => {
      if (used > 0) await write(out.subarray(0, used));
      used = 0;
    };
    for (let ti = 0; ti < file.tensors.length; ti++) {
      const t = file.tensors[ti]!;
      const expected = tensorElements(t.shape);
      const bs = GGML_BLOCK_SIZE[t.type];
      const perElem = GGML_TYPE_BYTES[t.type] / bs;
      let count = 0;
      for (const chunk of t.data()) {
        if (chunk.length % bs !== 0) throw new Error(`${t.name}: chunk length ${chunk.length} not a multiple of ${bs}`);
        count += chunk.length;
        if (count > expected) throw new Error(`${t.name}: more than ${expected} values`);
        const need = chunk.length * perElem;
        if (used + need > out.length) {
          await flush();
          if (need > out.length) out = Buffer.alloc(need);
        }
        used += encodeTensorChunk(t.type, chunk, out.subarray(used));
      }
      if (count !== expected) throw new Error(`${t.name}: got ${count} values, expected ${expected}`);
      const end = dataOffset + offsets[ti]! + tensorBytes(t);
      const pad = alignUp(end, alignment) - end;
      if (pad > 0) {
        // pad every tensor, the last one too (ggml's own writer does)
        if (used + pad > out.length) await flush();
        out.fill(0, used, used + pad);
        used += pad;
      }
    }
    await flush();
    ok = true;
    return { bytes: pos, dataOffset };
  } finally {
    await fh.close();
    if (!ok) await rm(path, { force: true }); // never leave a truncated model behind
  }
}
