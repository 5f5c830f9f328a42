/**
 * The linear-time tokenizer: its special-token split follows llama.cpp's rules (unit cases), and on any
 * text it gives exactly the tokens llama.cpp gives for the whole text (property test on the tiny model,
 * whose vocabulary has control tokens like <|im_start|> and user-defined ones like <tool_call>), while
 * inputs that were quadratic in llama.cpp stay fast.
 */
import fc from 'fast-check';
import { getLlama, LlamaLogLevel, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { SpecialTokenSplitter } from '../src/tokenizer/special-split.js';
import { TextTokenizer } from '../src/tokenizer/text-tokenizer.js';

describe('SpecialTokenSplitter', () => {
  const splitter = new SpecialTokenSplitter([
    { id: 1, text: '<|a|>', control: true },
    { id: 2, text: '<t>', control: false },
    { id: 3, text: '<|a|>x', control: false },
    { id: 4, text: '<s>', control: true, lstrip: true, rstrip: true },
  ]);

  it('splits plain text at special tokens, longest first', () => {
    expect(splitter.split('hi <|a|>x there<|a|>', true)).toEqual(['hi ', 3, ' there', 1]);
  });

  it('user-defined tokens are split even when special tokens are not parsed; control tokens only when they are', () => {
    expect(splitter.split('a<t>b<|a|>c', false)).toEqual(['a', 2, 'b<|a|>c']);
    expect(splitter.split('a<t>b<|a|>c', true)).toEqual(['a', 2, 'b', 1, 'c']);
  });

  it('lstrip / rstrip eat the ASCII whitespace around the token', () => {
    expect(splitter.split('a \t<s>\n b', true)).toEqual(['a', 4, 'b']);
    expect(splitter.split('  <s>  ', true)).toEqual([4]);
  });

  it('occurrences do not overlap and never straddle a piece already split off', () => {
    const s = new SpecialTokenSplitter([
      { id: 7, text: 'aa', control: false },
      { id: 8, text: 'XYZ', control: false },
    ]);
    expect(s.split('aaa', false)).toEqual([7, 'a']);
    // 'aXYZa': the longer token is taken first, so 'aa' has no occurrence left.
    expect(s.split('aXYZa', false)).toEqual(['a', 8, 'a']);
  });

  // No clock here: a quadratic split would run into the test timeout (llama.cpp's took minutes for this).
  it('splits 200k occurrences (linear)', () => {
    const pieces = splitter.split('<|a|>y'.repeat(200_000), true);
    expect(pieces.length).toBe(400_000);
  });
});

describe('TextTokenizer on the tiny model', () => {
  let model: LlamaModel;
  let tokenizer: TextTokenizer;

  beforeAll(async () => {
    const llama = await getLlama({ gpu: false, maxThreads: 1, build: 'never', logLevel: LlamaLogLevel.error });
    model = await llama.loadModel({ modelPath: inject('tinyModel'), vocabOnly: true });
    tokenizer = new TextTokenizer(model);
  });

  afterAll(async () => {
    await model?.dispose();
  });

  const fragments = [
    '<|im_start|>',
    '<|im_end|>',
    '<|endoftext|>',
    '<tool_call>',
    '</tool_call>',
    '<|fim_prefix|>',
    '<|im_',
    '|>',
    '<tool',
    'call>',
    'Hello',
    ' world',
    '你好',
    'é',
    ' ',
    '  ',
    '\n',
    '\t',
    '!',
    '123',
    'user',
  ];
  const texts = fc.array(fc.constantFrom(...fragments), { maxLength: 24 }).map((parts) => parts.join(''));

  it('gives llama.cpp’s tokens for any text, with and without special-token parsing', () => {
    fc.assert(
      fc.property(texts, fc.boolean(), (text, special) => {
        expect(tokenizer.tokenize(text, special)).toEqual(model.tokenize(text, special));
      }),
      { numRuns: 400 },
    );
  });

  // llama.cpp's own split is quadratic (80k took 60 s; this would take over two minutes): the test timeout guards it.
  it('120k special tokens: every one becomes its id', () => {
    const tokens = tokenizer.tokenize('<|im_start|>'.repeat(120_000), true);
    expect(tokens.length).toBe(120_000);
    expect(new Set(tokens).size).toBe(1);
  });

  it('user-defined tokens in plain text (a chat message) are linear too', () => {
    const tokens = tokenizer.tokenize('<tool_call>x'.repeat(40_000), false);
    expect(tokens.length).toBe(80_000);
  });
});
