/**
 * ggml tensor encodings used by the GGUF writer: F32, F16 and Q8_0, plus float16 helpers.
 */

/** ggml tensor types supported by the writer. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
}

/** Values per block, and bytes per block, of each type. */
export const GGML_BLOCK_SIZE: Record<GgmlType, number> = { [GgmlType.F32]: 1, [GgmlType.F16]: 1, [GgmlType.Q8_0]: 32 };
export const GGML_TYPE_BYTES: Record<GgmlType, number> = { [GgmlType.F32]: 4, [GgmlType.F16]: 2, [GgmlType.Q8_0]: 34 };

const f32Buf = new Float32Array(1);
const u32Buf = new Uint32Array(f32Buf.buffer);

/** float32 -> IEEE half bits, round to nearest even (like ggml's GGML_FP32_TO_FP16). */
export function f32ToF16(v: number): number {
  f32Buf[0] = v;
  const x = u32Buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) !== 0)) half++; // a carry correctly bumps the exponent
  return sign | half;
}

/** IEEE half bits -> number. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes `src` as `type` into `out` (which must be large enough); returns bytes written. */
export function encodeTensorChunk(type: GgmlType, src: Float32Array, out: Buffer): number {
  const n = src.length;
  if (type === GgmlType.F32) {
    out.set(new Uint8Array(src.buffer, src.byteOffset, n * 4));
    return n * 4;
  }
  if (type === GgmlType.F16) {
    for (let i = 0, o = 0; i < n; i++, o += 2) {
      const h = f32ToF16(src[i]!);
      out[o] = h & 0xff;
      out[o + 1] = h >>> 8;
    }
    return n * 2;
  }
  // Q8_0: per block of 32, f16 scale d = max|x| / 127, then 32 × int8 round(x / d).
  if (n % 32 !== 0) throw new Error(`Q8_0 chunk length ${n} is not a multiple of 32`);
  const q = new Int8Array(out.buffer, out.byteOffset, (n / 32) * 34);
  let o = 0;
  for (let b = 0; b < n; b += 32) {
    let amax = 0;
    for (let i = b; i < b + 32; i++) {
      const a = Math.abs(src[i]!);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? 1 / d : 0;
    const h = f32ToF16(d);
    q[o] = h & 0xff; // little-endian f16 scale
    q[o + 1] = h >>> 8;
    o += 2;
    // ggml's reference uses roundf (ties away from zero); floor(v + 0.5) differs only on exact
    // negative ties, and is branch-free (≈3x faster on random signs).
    for (let i = b; i < b + 32; i++) q[o++] = Math.floor(src[i]! * id + 0.5) | 0;
  }
  return o;
}
