import { describe, expect, it } from 'vitest';
import { BYTE_ORDER, BYTE_TO_SYMBOL, fromByteLevel, toByteLevel } from '../src/tokenizer/byte-level.js';
import { vocabularyBytes } from '../workers/token-bytes.js';

describe('GPT-2 byte-level symbols', () => {
  it("match GPT-2's bytes_to_unicode", () => {
    expect(BYTE_TO_SYMBOL[0x20]).toBe('Ġ'); // space, as in "Ġthe"
    expect(BYTE_TO_SYMBOL[0x0a]).toBe('Ċ'); // newline
    expect(BYTE_TO_SYMBOL[0x00]).toBe('Ā');
    expect(BYTE_TO_SYMBOL[0xad]).toBe('Ń'); // the soft hyphen is not printable
    expect(BYTE_TO_SYMBOL[0x41]).toBe('A');
    expect(new Set(BYTE_TO_SYMBOL).size).toBe(256);
  });

  it('order the vocabulary printable bytes first, as vocab.json does (id 0 is "!")', () => {
    expect(BYTE_ORDER).toHaveLength(256);
    expect(new Set(BYTE_ORDER).size).toBe(256);
    expect(BYTE_ORDER[0]).toBe(0x21);
    expect(BYTE_ORDER[188]).toBe(0x00);
    expect(BYTE_ORDER[255]).toBe(0xad);
  });

  it('round-trip any bytes and reject text that is not byte-level', () => {
    const bytes = Array.from({ length: 256 }, (_, b) => b);
    expect([...fromByteLevel(toByteLevel(bytes))!]).toEqual(bytes);
    expect(toByteLevel(' héllo')).toBe('ĠhÃ©llo');
    expect(fromByteLevel('<|im_end|>')?.toString()).toBe('<|im_end|>');
    expect(fromByteLevel('你')).toBeUndefined();
  });

  it("give the workers a token's bytes, special tokens as UTF-8", () => {
    expect(vocabularyBytes('ĠhÃ©')).toEqual([0x20, 0x68, 0xc3, 0xa9]);
    expect(vocabularyBytes('<tool▁call>')).toEqual([...Buffer.from('<tool▁call>', 'utf8')]);
  });
});
