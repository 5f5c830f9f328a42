/**
 * The GGUF writer's output parses (node-llama-cpp's reader, plus a byte-level check of the
 * tensor data), and the tiny demo model loads in node-llama-cpp and produces its script.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getLlama,
  JinjaTemplateChatWrapper,
  LlamaChatSession,
  LlamaLogLevel,
  readGgufFileInfo,
  resolveChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaModel,
  type Token,
} from 'node-llama-cpp';
import { f16ToF32, f32ToF16, gguf, GgmlType, GgufType, writeGguf } from '../src/demo-model/gguf-writer.js';
import {
  TINY_SCRIPT_TEXT,
  TINY_SCRIPT_TOKEN_IDS,
  TINY_SCRIPT_TOKENS,
  TINY_SPECIAL_IDS,
  TINY_VOCAB_SIZE,
  writeDemoModel,
} from '../src/demo-model/demo-model.js';
import { fromByteLevel } from '../src/tokenizer/byte-level.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-gguf-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('gguf writer', () => {
  it('converts float32 to float16 like ggml', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(0.1)).toBe(0x2e66);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // rounds up to +inf
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even
    expect(f32ToF16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16(2 ** -26)).toBe(0x0000);
    expect(f32ToF16(-0)).toBe(0x8000);
    for (const v of [0.5, -3.25, 1e-3, 6.1e-5, 12345]) expect(Math.abs(f16ToF32(f32ToF16(v)) - v)).toBeLessThan(Math.abs(v) * 1e-3);
  });

  it('writes GGUF v3 metadata and F32/F16/Q8_0 tensors that read back', async () => {
    const file = path.join(dir, 'writer.gguf');
    const f32 = Float32Array.from({ length: 8 }, (_, i) => i - 3.5);
    const f16 = Float32Array.from({ length: 32 }, (_, i) => i / 8 - 2);
    const q8 = Float32Array.from({ length: 64 * 3 }, (_, i) => Math.sin(i) * (1 + (i >> 6)));
    const { bytes, dataOffset } = await writeGguf(file, {
      metadata: [
        ['general.architecture', gguf.str('test')],
        ['test.u8', gguf.u8(200)],
        ['test.i8', gguf.i8(-100)],
        ['test.u16', gguf.u16(60000)],
        ['test.i16', gguf.i16(-30000)],
        ['test.u32', gguf.u32(4000000000)],
        ['test.i32', gguf.i32(-2000000000)],
        ['test.u64', gguf.u64(2n ** 40n)],
        ['test.i64', gguf.i64(-(2n ** 40n))],
        ['test.f32', gguf.f32(0.5)],
        ['test.f64', gguf.f64(Math.PI)],
        ['test.bool', gguf.bool(true)],
        ['test.str', gguf.str('héllo 你好')],
        ['test.strs', gguf.arr(GgufType.STRING, ['a b', '', 'Ġthe'])],
        ['test.ints', gguf.arr(GgufType.INT32, [1, -2, 3])],
        ['test.floats', gguf.arr(GgufType.FLOAT32, [0.25, -1])],
      ],
      tensors: [
        { name: 'a', shape: [4, 2], type: GgmlType.F32, data: () => [f32.subarray(0, 4), f32.subarray(4)] },
        { name: 'b', shape: [32], type: GgmlType.F16, data: () => [f16] },
        { name: 'c', shape: [64, 3], type: GgmlType.Q8_0, data: () => [q8.subarray(0, 64), q8.subarray(64)] },
      ],
    });
    expect(bytes).toBe(fs.statSync(file).size);
    expect(dataOffset % 32).toBe(0);

    const info = await readGgufFileInfo(file, { logWarnings: false });
    expect(info.version).toBe(3);
    expect(Number(info.tensorCount)).toBe(3);
    expect(info.infoEndOffset).toBe(dataOffset);
    const md = info.metadata as unknown as Record<string, Record<string, unknown>>;
    expect(md.general).toMatchObject({ architecture: 'test', alignment: 32 });
    expect(md.test).toMatchObject({
      u8: 200,
      i8: -100,
      u16: 60000,
      i16: -30000,
      u32: 4000000000,
      i32: -2000000000,
      f32: 0.5,
      f64: Math.PI,
      bool: true,
      str: 'héllo 你好',
      strs: ['a b', '', 'Ġthe'],
      ints: [1, -2, 3],
      floats: [0.25, -1],
    });
    expect(BigInt(md.test!.u64 as bigint)).toBe(2n ** 40n);
    expect(BigInt(md.test!.i64 as bigint)).toBe(-(2n ** 40n));
    const tensors = info.tensorInfo!;
    expect(tensors.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType])).toEqual([
      ['a', [4, 2], 0],
      ['b', [32], 1],
      ['c', [64, 3], 8],
    ]);
    for (const t of tensors) expect(Number(t.offset) % 32).toBe(0);

    const raw = fs.readFileSync(file);
    const at = (name: string): number => dataOffset + Number(tensors.find((t) => t.name === name)!.offset);
    for (let i = 0; i < 8; i++) expect(raw.readFloatLE(at('a') + 4 * i)).toBe(f32[i]);
    for (let i = 0; i < 32; i++) expect(f16ToF32(raw.readUInt16LE(at('b') + 2 * i))).toBe(f16[i]); // exactly representable
    for (let blk = 0; blk < 6; blk++) {
      const o = at('c') + blk * 34;
      const d = f16ToF32(raw.readUInt16LE(o));
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(q8[blk * 32 + i]!));
      expect(d).toBeCloseTo(amax / 127, 4);
      for (let i = 0; i < 32; i++) expect(Math.abs(raw.readInt8(o + 2 + i) * d - q8[blk * 32 + i]!)).toBeLessThanOrEqual(d * 0.57);
    }
  });
  it('rejects inconsistent tensor data and leaves no partial file', async () => {
    const file = path.join(dir, 'bad.gguf');
    const bad = writeGguf(file, {
      metadata: [['general.architecture', gguf.str('test')]],
      tensors: [{ name: 'x', shape: [32, 2], type: GgmlType.Q8_0, data: () => [new Float32Array(32)] }],
    });
    await expect(bad).rejects.toThrow('x: got 32 values, expected 64');
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('tiny demo model', () => {
  let tinyPath: string;
  let llama: Llama;
  let model: LlamaModel;
  let context: LlamaContext;

  beforeAll(async () => {
    tinyPath = path.join(dir, 'tiny.gguf');
    await writeDemoModel({ size: 'tiny', outPath: tinyPath });
    llama = await getLlama({ gpu: false, maxThreads: 1, build: 'never', logLevel: LlamaLogLevel.error });
    model = await llama.loadModel({ modelPath: tinyPath });
    context = await model.createContext({ contextSize: 512, sequences: 1, threads: 1 });
  });
  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
    await llama?.dispose();
  });

  async function generate(prompt: Token[], maxTokens: number, temperature = 0): Promise<Token[]> {
    const seq = context.getSequence();
    try {
      const out: Token[] = [];
      for await (const token of seq.evaluate(prompt, { temperature, yieldEogToken: true })) {
        out.push(token);
        if (out.length >= maxTokens) break;
      }
      return out;
    } finally {
      await seq.dispose();
    }
  }

  it('is a small qwen2 GGUF with the ChatML specials', async () => {
    expect(fs.statSync(tinyPath).size).toBeLessThan(512 * 1024);
    const info = await readGgufFileInfo(tinyPath, { logWarnings: false });
    expect(info.metadata.general.architecture).toBe('qwen2');
    expect(info.metadata.tokenizer.ggml.model).toBe('gpt2');
    expect(info.metadata.tokenizer.ggml.tokens.length).toBe(TINY_VOCAB_SIZE);
    expect(model.tokens.eos).toBe(TINY_SPECIAL_IDS.imEnd);
    expect(model.tokens.bos).toBe(TINY_SPECIAL_IDS.endOfText);
    expect(model.detokenize([TINY_SPECIAL_IDS.imStart as Token], true)).toBe('<|im_start|>');
    expect(TINY_SCRIPT_TOKEN_IDS.length).toBe(TINY_SCRIPT_TOKENS);
    expect(new Set(TINY_SCRIPT_TOKEN_IDS).size).toBe(TINY_SCRIPT_TOKENS);
  });

  it('greedily produces the script, then EOS, then the script again', async () => {
    const tokens = await generate(model.tokenize('Hi there'), 2 * TINY_SCRIPT_TOKENS + 2);
    expect(tokens.slice(0, TINY_SCRIPT_TOKENS)).toEqual(TINY_SCRIPT_TOKEN_IDS);
    expect(model.detokenize(tokens.slice(0, TINY_SCRIPT_TOKENS))).toBe(TINY_SCRIPT_TEXT);
    expect(tokens[TINY_SCRIPT_TOKENS]).toBe(model.tokens.eos);
    expect(tokens.slice(TINY_SCRIPT_TOKENS + 1, 2 * TINY_SCRIPT_TOKENS + 1)).toEqual(TINY_SCRIPT_TOKEN_IDS);
    expect(tokens[2 * TINY_SCRIPT_TOKENS + 1]).toBe(model.tokens.eos);
  });

  it('starts the script from the beginning after any prompt, even at temperature 1', async () => {
    for (const prompt of ['Hello', 'The end.', '你好，世界。', 'Héllo again.', TINY_SCRIPT_TEXT]) {
      const tokens = model.tokenize(prompt);
      expect(TINY_SCRIPT_TOKEN_IDS).not.toContain(tokens.at(-1));
      expect(await generate(tokens, 3, 1)).toEqual(TINY_SCRIPT_TOKEN_IDS.slice(0, 3));
    }
  });

  it('splits "你" across two tokens: a lone lead byte, then its continuation bytes', async () => {
    const info = await readGgufFileInfo(tinyPath, { logWarnings: false });
    const pieces = TINY_SCRIPT_TOKEN_IDS.map((id) => fromByteLevel(info.metadata.tokenizer.ggml.tokens[id]!)!);
    expect(Buffer.concat(pieces).toString('utf8')).toBe(TINY_SCRIPT_TEXT);
    const k = pieces.findIndex((p) => p.equals(Buffer.from([0xe4])));
    expect(pieces[k + 1]).toEqual(Buffer.from([0xbd, 0xa0]));
    const lead = TINY_SCRIPT_TOKEN_IDS[k]! as Token;
    const rest = TINY_SCRIPT_TOKEN_IDS[k + 1]! as Token;
    expect(model.detokenize([lead])).not.toContain('你');
    expect(model.detokenize([lead, rest])).toBe('你');
  });

  it("has Qwen2.5's chat template (tools included), and a chat reply is the script", async () => {
    const info = await readGgufFileInfo(tinyPath, { logWarnings: false });
    const template = info.metadata.tokenizer.chat_template!;
    const jinja = new JinjaTemplateChatWrapper({ template, tokenizer: model.tokenizer });
    const { contextText } = jinja.generateContextState({
      chatHistory: [
        { type: 'user', text: 'Hi' },
        { type: 'model', response: [] },
      ],
    });
    expect(contextText.toString()).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    // With tools, the template lists them and explains the <tool_call> format.
    const withTools = jinja.generateContextState({
      chatHistory: [
        { type: 'user', text: 'Hi' },
        { type: 'model', response: [] },
      ],
      availableFunctions: { get_time: { description: 'Now' } },
    });
    expect(withTools.contextText.toString()).toContain(
      '<tools>\n{"type": "function", "function": {"name": "get_time", "description": "Now"',
    );
    expect(withTools.contextText.toString()).toContain(
      '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>',
    );
    // (node-llama-cpp takes ~2 s here: it renders the template against each known chat wrapper)
    const chatWrapper = resolveChatWrapper({ fileInfo: info, tokenizer: model.tokenizer });
    expect(chatWrapper?.wrapperName).toBe('Qwen');

    const session = new LlamaChatSession({ contextSequence: context.getSequence(), chatWrapper: chatWrapper! });
    try {
      expect(await session.prompt('Say something.', { temperature: 0 })).toBe(TINY_SCRIPT_TEXT);
      expect(await session.prompt('Again!', { temperature: 0 })).toBe(TINY_SCRIPT_TEXT);
    } finally {
      session.dispose({ disposeSequence: true });
    }
  });

  it('produces the same script with F16 weights', async () => {
    const f16Path = path.join(dir, 'tiny-f16.gguf');
    await writeDemoModel({ size: 'tiny', outPath: f16Path, type: 'f16', seed: 7 });
    const m = await llama.loadModel({ modelPath: f16Path });
    try {
      const ctx = await m.createContext({ contextSize: 256, sequences: 1, threads: 1 });
      const seq = ctx.getSequence();
      const out: Token[] = [];
      for await (const t of seq.evaluate(m.tokenize('x'), { temperature: 0 })) out.push(t);
      expect(m.detokenize(out)).toBe(TINY_SCRIPT_TEXT);
      await ctx.dispose();
    } finally {
      await m.dispose();
    }
  });
});
