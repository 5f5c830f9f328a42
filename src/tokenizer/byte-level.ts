/**
 * GPT-2's byte-level symbols (`bytes_to_unicode`), used by Qwen's byte-level BPE vocabulary: every byte is
 * stored as one printable character. Printable Latin-1 bytes stand for themselves; the other 68 bytes map, in
 * byte order, to U+0100 onwards. The one table both sides use: the workers to recover a token's exact bytes,
 * the demo-model writer to build its vocabulary.
 */

const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);

/** Each byte's symbol, indexed by byte value. */
export const BYTE_TO_SYMBOL: readonly string[] = (() => {
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + extra++));
  return out;
})();

/** Byte values in GPT-2's vocabulary order: the printable bytes first, then the rest (so id 0 is "!"). */
export const BYTE_ORDER: readonly number[] = [
  ...Array.from({ length: 256 }, (_, b) => b).filter(printable),
  ...Array.from({ length: 256 }, (_, b) => b).filter((b) => !printable(b)),
];

const SYMBOL_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_SYMBOL.map((symbol, b) => [symbol, b]));

/** UTF-8 text or raw bytes -> byte-level symbol string (a token's text in the vocabulary). */
export function toByteLevel(piece: string | readonly number[]): string {
  const bytes = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
  let s = '';
  for (const b of bytes) s += BYTE_TO_SYMBOL[b]!;
  return s;
}

/** Byte-level symbol string -> bytes; undefined if it holds a character that is not a byte-level symbol. */
export function fromByteLevel(text: string): Buffer | undefined {
  const bytes: number[] = [];
  for (const c of text) {
    const b = SYMBOL_TO_BYTE.get(c);
    if (b === undefined) return undefined;
    bytes.push(b);
  }
  return Buffer.from(bytes);
}
