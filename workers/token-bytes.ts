/**
 * A token's exact bytes, from its vocabulary text: GPT-2 byte-level BPE (Qwen's tokenizer) stores every
 * byte as a printable character (bytes_to_unicode); this inverts it. Special tokens are plain text.
 */
import type { LlamaModel, Token } from 'node-llama-cpp';
import { fromByteLevel } from '../src/tokenizer/byte-level.js';
import { vocabularyText } from './native.js';

/** Bytes of a vocabulary entry: byte-level symbols decoded; other text (special tokens) as UTF-8. */
export function vocabularyBytes(text: string): number[] {
  return [...(fromByteLevel(text) ?? Buffer.from(text, 'utf8'))];
}

/** Bytes that occur in no valid UTF-8 text: C0 and C1 (only in overlong forms) and F5-FF. */
const neverUtf8 = (b: number) => b === 0xc0 || b === 0xc1 || b >= 0xf5;

/**
 * Lead bytes whose first continuation byte is restricted (UTF-8's table 3-7): E0 A0-BF (no overlong),
 * ED 80-9F (no surrogates), F0 90-BF (no overlong), F4 80-8F (nothing beyond U+10FFFF).
 */
const FIRST_CONTINUATION: ReadonlyMap<number, [number, number]> = new Map([
  [0xe0, [0xa0, 0xbf]],
  [0xed, [0x80, 0x9f]],
  [0xf0, [0x90, 0xbf]],
  [0xf4, [0x80, 0x8f]],
]);

/**
 * Which tokens would make the bytes generated so far invalid UTF-8. llama.cpp's grammars work on decoded
 * code points and decode leniently (any lead byte from F0 up as 4 bytes, overlong forms as their value),
 * so a JSON string under a grammar could take bytes that are not text, and then parse to U+FFFD or break
 * maxLength. A model trained on text never writes those; sampling under a grammar can (the demo model did,
 * 1 string in 10 at temperature 1). Under a grammar these tokens are ruled out.
 */
export class Utf8Guard {
  /** Tokens holding a byte no valid UTF-8 has (always ruled out). */
  readonly never: Uint32Array;
  /** First and last byte of every token (-1 for an empty one): all the guard needs, in 4 bytes a token. */
  private readonly first: Int16Array;
  private readonly last: Int16Array;
  private readonly afterLead = new Map<number, Uint32Array>();

  constructor(model: LlamaModel, vocabularySize: number) {
    const text = vocabularyText(model);
    const never: number[] = [];
    this.first = new Int16Array(vocabularySize).fill(-1);
    this.last = new Int16Array(vocabularySize).fill(-1);
    for (let t = 0; t < vocabularySize; t++) {
      const bytes = vocabularyBytes(text(t as Token));
      if (bytes.length === 0) continue;
      this.first[t] = bytes[0]!;
      this.last[t] = bytes.at(-1)!;
      if (bytes.some(neverUtf8)) never.push(t);
    }
    this.never = Uint32Array.from(never);
  }

  /** Tokens to rule out after `token`: those that start with a continuation byte its last byte forbids. */
  after(token: Token): Uint32Array | undefined {
    const lead = this.last[token] ?? -1;
    const range = FIRST_CONTINUATION.get(lead);
    if (!range) return undefined;
    let banned = this.afterLead.get(lead);
    if (!banned) {
      const [low, high] = range;
      const out: number[] = [];
      this.first.forEach((b, t) => {
        if (b >= 0x80 && b <= 0xbf && (b < low || b > high)) out.push(t);
      });
      this.afterLead.set(lead, (banned = Uint32Array.from(out)));
    }
    return banned;
  }
}
