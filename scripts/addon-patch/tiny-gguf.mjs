/**
 * A minimal llama.cpp `qwen2` model (GGUF v3, F32, random weights, ~60 KB) for checking a rebuilt addon at
 * install time, before the project is compiled (the project's own model writer is TypeScript, in dist/ only
 * after `npm run build`). The vocabulary is GPT-2's 256 byte-level symbols plus `<|endoftext|>`; the weights
 * are seeded noise, so logits are spread and distinct: what sampling with probabilities needs to be checked.
 */
import fs from 'node:fs';

const HIDDEN = 32;
const HEADS = 2;
const KV_HEADS = 1;
const FFN = 64;
const ALIGN = 32;

/** GPT-2's byte-to-symbol table: printable bytes stand for themselves, the rest map past U+0100. */
function byteSymbols() {
  const symbols = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    symbols.push(String.fromCodePoint(printable ? b : 256 + shifted++));
  }
  return symbols;
}

class Bytes {
  parts = [];
  length = 0;
  push(buf) {
    this.parts.push(buf);
    this.length += buf.length;
  }
  u32(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  pad() {
    this.push(Buffer.alloc((ALIGN - (this.length % ALIGN)) % ALIGN));
  }
}

// GGUF value types.
const U32 = 4;
const I32 = 5;
const F32 = 6;
const BOOL = 7;
const STR = 8;
const ARR = 9;

function writeValue(out, [type, value, itemType]) {
  out.u32(type);
  if (type === ARR) {
    out.u32(itemType);
    out.u64(value.length);
    for (const v of value) writeScalar(out, itemType, v);
  } else writeScalar(out, type, value);
}

function writeScalar(out, type, v) {
  if (type === U32) out.u32(v);
  else if (type === I32) out.push(Buffer.from(Int32Array.of(v).buffer));
  else if (type === F32) out.f32(v);
  else if (type === BOOL) out.push(Buffer.of(v ? 1 : 0));
  else out.str(v);
}

/** Writes the model to `file`; returns its vocabulary size. */
export function writeTinyModel(file) {
  const tokens = [...byteSymbols(), '<|endoftext|>'];
  const eot = tokens.length - 1;
  const kvDim = (HIDDEN / HEADS) * KV_HEADS;
  const metadata = [
    ['general.architecture', [STR, 'qwen2']],
    ['general.alignment', [U32, ALIGN]],
    ['general.file_type', [U32, 0]],
    ['qwen2.block_count', [U32, 1]],
    ['qwen2.context_length', [U32, 256]],
    ['qwen2.embedding_length', [U32, HIDDEN]],
    ['qwen2.feed_forward_length', [U32, FFN]],
    ['qwen2.attention.head_count', [U32, HEADS]],
    ['qwen2.attention.head_count_kv', [U32, KV_HEADS]],
    ['qwen2.rope.freq_base', [F32, 1e6]],
    ['qwen2.attention.layer_norm_rms_epsilon', [F32, 1e-6]],
    ['tokenizer.ggml.model', [STR, 'gpt2']],
    ['tokenizer.ggml.pre', [STR, 'qwen2']],
    ['tokenizer.ggml.tokens', [ARR, tokens, STR]],
    ['tokenizer.ggml.token_type', [ARR, tokens.map((_, i) => (i === eot ? 3 : 1)), I32]],
    ['tokenizer.ggml.merges', [ARR, [], STR]],
    ['tokenizer.ggml.eos_token_id', [U32, eot]],
    ['tokenizer.ggml.bos_token_id', [U32, eot]],
    ['tokenizer.ggml.padding_token_id', [U32, eot]],
    ['tokenizer.ggml.add_bos_token', [BOOL, false]],
  ];
  const tensors = [
    ['token_embd.weight', [HIDDEN, tokens.length], 1],
    ['blk.0.attn_norm.weight', [HIDDEN]],
    ['blk.0.attn_q.weight', [HIDDEN, HIDDEN], 0.2],
    ['blk.0.attn_q.bias', [HIDDEN], 0.2],
    ['blk.0.attn_k.weight', [HIDDEN, kvDim], 0.2],
    ['blk.0.attn_k.bias', [kvDim], 0.2],
    ['blk.0.attn_v.weight', [HIDDEN, kvDim], 0.2],
    ['blk.0.attn_v.bias', [kvDim], 0.2],
    ['blk.0.attn_output.weight', [HIDDEN, HIDDEN], 0.2],
    ['blk.0.ffn_norm.weight', [HIDDEN]],
    ['blk.0.ffn_gate.weight', [HIDDEN, FFN], 0.2],
    ['blk.0.ffn_up.weight', [HIDDEN, FFN], 0.2],
    ['blk.0.ffn_down.weight', [FFN, HIDDEN], 0.2],
    ['output_norm.weight', [HIDDEN]],
    ['output.weight', [HIDDEN, tokens.length], 1],
  ];

  const out = new Bytes();
  out.u32(0x46554747); // "GGUF"
  out.u32(3);
  out.u64(tensors.length);
  out.u64(metadata.length);
  for (const [key, value] of metadata) {
    out.str(key);
    writeValue(out, value);
  }
  let offset = 0;
  for (const [name, shape] of tensors) {
    out.str(name);
    out.u32(shape.length);
    for (const d of shape) out.u64(d);
    out.u32(0); // F32
    out.u64(offset);
    offset += Math.ceil((shape.reduce((a, b) => a * b) * 4) / ALIGN) * ALIGN;
  }
  out.pad();
  let seed = 0x2545f491;
  const random = () => {
    // xorshift32: seeded, so every install checks the same model.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32 - 0.5;
  };
  for (const [, shape, scale] of tensors) {
    const values = new Float32Array(shape.reduce((a, b) => a * b));
    // Norm weights are 1; matrices and biases are noise.
    for (let i = 0; i < values.length; i++) values[i] = scale === undefined ? 1 : random() * 2 * scale;
    out.push(Buffer.from(values.buffer));
    out.pad();
  }
  fs.writeFileSync(file, Buffer.concat(out.parts));
  return tokens.length;
}
