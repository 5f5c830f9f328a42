/**
 * Demo GGUF models of llama.cpp's `qwen2` architecture, with generated weights.
 *
 * - `full`: the shape of Qwen2.5-0.5B (hidden 896, 24 layers, 14/2 heads, FFN 4864,
 *   151936-token vocabulary with the Qwen specials at their real ids, tied embeddings),
 *   random weights. Meant for benchmarks: the embeddings (= output rows) of the specials,
 *   the placeholders and the lone non-ASCII bytes are zero, so it essentially never emits EOS,
 *   empty-text or invalid-UTF-8 tokens: generation runs until max tokens (greedy output soon
 *   repeats one token, as random models do).
 * - `tiny`: hidden 64, 2 layers, 406 tokens, ~145 KB (Q8_0). Its weights make it a
 *   Markov chain on the last token that, under greedy sampling (or any temperature up to ~1),
 *   produces TINY_SCRIPT_TEXT, then `<|im_end|>` (EOS), then the script again.
 *
 * How tiny works: attn_output / ffn_down are ~1e-3, so the residual stream stays ≈ the
 * token embedding. Script token k has embedding e_(k+1) (one-hot); every other token
 * (prompt text, specials) has e_0, the START state. output.weight maps direction e_0 to the
 * first script token, e_(k+1) to script token k+1, and the last script token's direction to
 * `<|im_end|>`, with a logit of ≈ 8 (rms-norm gain for a one-hot in 64 dims) × 3 = 24.
 */
import { mulberry32 } from '../shared/random.js';
import { writeGguf, gguf, GgmlType, GgufType, tensorElements, type GgufTensor, type GgufValue } from './gguf-writer.js';
import { buildDemoVocab, CHAT_TEMPLATE, isCleanTextToken, SCRIPT_PIECES, TokenType, type DemoVocab } from './demo-tokenizer.js';

export type DemoModelSize = 'tiny' | 'full';
export type DemoModelType = 'q8_0' | 'f16' | 'f32';

interface DemoModelShape {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  contextLength: number;
  vocab: number;
}

const DEMO_MODEL_SHAPES: Readonly<Record<DemoModelSize, Readonly<Omit<DemoModelShape, 'vocab'>>>> = {
  tiny: { hidden: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 128, contextLength: 4096 },
  full: { hidden: 896, layers: 24, heads: 14, kvHeads: 2, ffn: 4864, contextLength: 32768 },
};

const vocabCache = new Map<DemoModelSize, DemoVocab>();
function getVocab(size: DemoModelSize): DemoVocab {
  let v = vocabCache.get(size);
  if (v == null) vocabCache.set(size, (v = buildDemoVocab(size)));
  return v;
}

const tinyVocab = getVocab('tiny');

/** What the tiny model generates greedily before EOS, as detokenized. */
export const TINY_SCRIPT_TEXT: string = Buffer.from(
  SCRIPT_PIECES.flatMap((p) => [...(typeof p === 'string' ? Buffer.from(p, 'utf8') : p)]),
).toString('utf8');
/** Tokens per script cycle, excluding the EOS (`<|im_end|>`) that follows. */
export const TINY_SCRIPT_TOKENS: number = tinyVocab.scriptIds.length;
/** Token ids of one script cycle (excluding EOS). */
export const TINY_SCRIPT_TOKEN_IDS: readonly number[] = tinyVocab.scriptIds;
/** Size of the tiny model's vocabulary. */
export const TINY_VOCAB_SIZE: number = tinyVocab.tokens.length;
/** Special token ids of the tiny model (`<|endoftext|>` is BOS and PAD, `<|im_end|>` is EOS). */
export const TINY_SPECIAL_IDS = {
  endOfText: tinyVocab.endOfText,
  imStart: tinyVocab.imStart,
  imEnd: tinyVocab.imEnd,
  bos: tinyVocab.endOfText,
  eos: tinyVocab.imEnd,
  pad: tinyVocab.endOfText,
} as const;
/**
 * Tiny-model tokens tests bias (logit_bias) to steer the script: `<tool_call>` starts a tool call in a
 * free answer, a newline between two calls makes parallel calls.
 */
export const TINY_STEERING_IDS = {
  toolCall: tinyVocab.tokens.indexOf('<tool_call>'),
  // "\n" as a byte-level BPE symbol.
  newline: tinyVocab.tokens.indexOf('\u010a'),
} as const;

export interface WriteDemoModelOptions {
  size: DemoModelSize;
  outPath: string;
  /** Weight type of the matrices (norms and biases are always F32). Default q8_0. */
  type?: DemoModelType;
  /** Seed of the random weights. Default 1. (The tiny model's script does not depend on it.) */
  seed?: number;
  /**
   * Write `qwen2.pooling_type` (llama.cpp's marker of an embedding model, as in gte-Qwen2 GGUFs): the
   * model is then served on /v1/embeddings. Default: none (a text-generation model).
   */
  pooling?: DemoPooling;
  /**
   * More layers and a wider FFN than the size's own. The tiny model keeps its script (attn_output and ffn_down stay
   * ~1e-3, so the residual stays ≈ the embedding) at a higher cost per token: a main model the plain tiny one can
   * draft for (speculative decoding with a draft model).
   */
  heavier?: { layers: number; ffn: number };
}

/** llama.cpp's pooling types an embedding GGUF declares. */
export const DEMO_POOLINGS = { mean: 1, cls: 2, last: 3 } as const;
export type DemoPooling = keyof typeof DEMO_POOLINGS;

export interface DemoModelInfo {
  size: DemoModelSize;
  type: DemoModelType;
  shape: DemoModelShape;
  tensors: number;
  parameters: number;
  bytes: number;
  outPath: string;
}

// ------------------------------------------------------------------ random numbers

/** FNV-1a, to derive a per-tensor seed (tensors do not depend on write order). */
function hashSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Fills `out` with triangular noise (the sum of two uniforms, from the two 16-bit halves of
 * one PRNG draw) of standard deviation `std`: normal-ish and cheap.
 */
function fillNoise(out: Float32Array, rand: () => number, std: number): void {
  const k = std * Math.sqrt(6);
  const scale = k / 65536;
  for (let i = 0; i < out.length; i++) {
    const x = rand();
    out[i] = ((x >>> 16) + (x & 0xffff)) * scale - k;
  }
}

type RowFiller = (row: number, out: Float32Array, rand: () => number) => void;

/** A tensor whose rows (ne[0] values each) are produced by `fill`, in chunks of ~256K values. */
function tensor(name: string, shape: readonly number[], type: GgmlType, seed: number, fill: RowFiller): GgufTensor {
  return {
    name,
    shape,
    type,
    *data() {
      const rowLen = shape[0]!;
      const rows = tensorElements(shape) / rowLen;
      const perChunk = Math.max(1, Math.floor((1 << 18) / rowLen));
      const buf = new Float32Array(perChunk * rowLen);
      const rand = mulberry32(hashSeed(seed, name));
      for (let r0 = 0; r0 < rows; r0 += perChunk) {
        const n = Math.min(perChunk, rows - r0);
        for (let r = 0; r < n; r++) fill(r0 + r, buf.subarray(r * rowLen, (r + 1) * rowLen), rand);
        yield n === perChunk ? buf : buf.subarray(0, n * rowLen);
      }
    },
  };
}

const noise =
  (std: number): RowFiller =>
  (_row, out, rand) =>
    fillNoise(out, rand, std);
const ones: RowFiller = (_row, out) => out.fill(1);

// ------------------------------------------------------------------ model

const GGML_TYPES: Record<DemoModelType, GgmlType> = { q8_0: GgmlType.Q8_0, f16: GgmlType.F16, f32: GgmlType.F32 };
const FILE_TYPES: Record<DemoModelType, number> = { q8_0: 7, f16: 1, f32: 0 };

function buildTensors(size: DemoModelSize, shape: DemoModelShape, vocab: DemoVocab, wtype: GgmlType, seed: number): GgufTensor[] {
  const { hidden, layers, heads, kvHeads, ffn } = shape;
  const kvDim = kvHeads * (hidden / heads);
  const F32 = GgmlType.F32;
  const t: GgufTensor[] = [];
  const tiny = size === 'tiny';

  if (tiny) {
    // direction of each token: 0 = START, k+1 = script token k.
    const dir = new Int32Array(shape.vocab);
    vocab.scriptIds.forEach((id, k) => (dir[id] = k + 1));
    // next[d] = the token the state with direction d must produce.
    const next = [...vocab.scriptIds, vocab.imEnd];
    const target = new Map<number, number>(next.map((id, d) => [id, d]));
    if (next.length > hidden) throw new Error('script longer than the hidden size allows');
    t.push(
      tensor('token_embd.weight', [hidden, shape.vocab], wtype, seed, (row, out, rand) => {
        fillNoise(out, rand, 0.01);
        out[dir[row]!] = 1;
      }),
    );
    t.push(
      tensor('output.weight', [hidden, shape.vocab], wtype, seed, (row, out, rand) => {
        fillNoise(out, rand, 0.01);
        const d = target.get(row);
        if (d != null) out[d] = 3;
      }),
    );
  } else {
    // Tied embeddings (like Qwen2.5-0.5B). Only tokens that decode to clean, complete UTF-8
    // text get non-zero rows, so the random logits (≈ N(0, 4.5²)) always favour them over
    // EOS/specials/placeholders/lone UTF-8 bytes (which would stream as nothing or "�").
    const real = vocab.types.map((ty, i) => ty === TokenType.NORMAL && isCleanTextToken(vocab.tokens[i]!));
    t.push(
      tensor('token_embd.weight', [hidden, shape.vocab], wtype, seed, (row, out, rand) => {
        if (real[row]) fillNoise(out, rand, 0.15);
        else out.fill(0);
      }),
    );
  }

  const small = tiny ? 1e-3 : 0.02; // attn_output / ffn_down: keep tiny's residual ≈ embedding
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    t.push(tensor(p + 'attn_norm.weight', [hidden], F32, seed, ones));
    t.push(tensor(p + 'attn_q.weight', [hidden, hidden], wtype, seed, noise(0.02)));
    t.push(tensor(p + 'attn_q.bias', [hidden], F32, seed, noise(0.02)));
    t.push(tensor(p + 'attn_k.weight', [hidden, kvDim], wtype, seed, noise(0.02)));
    t.push(tensor(p + 'attn_k.bias', [kvDim], F32, seed, noise(0.02)));
    t.push(tensor(p + 'attn_v.weight', [hidden, kvDim], wtype, seed, noise(0.02)));
    t.push(tensor(p + 'attn_v.bias', [kvDim], F32, seed, noise(0.02)));
    t.push(tensor(p + 'attn_output.weight', [hidden, hidden], wtype, seed, noise(small)));
    t.push(tensor(p + 'ffn_norm.weight', [hidden], F32, seed, ones));
    t.push(tensor(p + 'ffn_gate.weight', [hidden, ffn], wtype, seed, noise(0.02)));
    t.push(tensor(p + 'ffn_up.weight', [hidden, ffn], wtype, seed, noise(0.02)));
    t.push(tensor(p + 'ffn_down.weight', [ffn, hidden], wtype, seed, noise(small)));
  }
  t.push(tensor('output_norm.weight', [hidden], F32, seed, ones));
  return t;
}

function buildMetadata(
  size: DemoModelSize,
  shape: DemoModelShape,
  vocab: DemoVocab,
  type: DemoModelType,
  pooling?: DemoPooling,
): [string, GgufValue][] {
  const a = 'qwen2';
  return [
    ['general.architecture', gguf.str(a)],
    ['general.type', gguf.str('model')],
    ['general.name', gguf.str(`qwen-serve demo ${size} (random weights)`)],
    ['general.size_label', gguf.str(size === 'full' ? '0.5B' : 'tiny')],
    ['general.file_type', gguf.u32(FILE_TYPES[type])],
    ['general.quantization_version', gguf.u32(2)],
    ['general.alignment', gguf.u32(32)],
    [`${a}.block_count`, gguf.u32(shape.layers)],
    [`${a}.context_length`, gguf.u32(shape.contextLength)],
    [`${a}.embedding_length`, gguf.u32(shape.hidden)],
    [`${a}.feed_forward_length`, gguf.u32(shape.ffn)],
    [`${a}.attention.head_count`, gguf.u32(shape.heads)],
    [`${a}.attention.head_count_kv`, gguf.u32(shape.kvHeads)],
    [`${a}.rope.freq_base`, gguf.f32(1e6)],
    [`${a}.attention.layer_norm_rms_epsilon`, gguf.f32(1e-6)],
    ...(pooling ? [[`${a}.pooling_type`, gguf.u32(DEMO_POOLINGS[pooling])] as [string, GgufValue]] : []),
    ['tokenizer.ggml.model', gguf.str('gpt2')],
    ['tokenizer.ggml.pre', gguf.str('qwen2')],
    ['tokenizer.ggml.tokens', gguf.arr(GgufType.STRING, vocab.tokens)],
    ['tokenizer.ggml.token_type', gguf.arr(GgufType.INT32, vocab.types)],
    ['tokenizer.ggml.merges', gguf.arr(GgufType.STRING, vocab.merges)],
    ['tokenizer.ggml.eos_token_id', gguf.u32(vocab.imEnd)],
    ['tokenizer.ggml.padding_token_id', gguf.u32(vocab.endOfText)],
    ['tokenizer.ggml.bos_token_id', gguf.u32(vocab.endOfText)],
    ['tokenizer.ggml.add_bos_token', gguf.bool(false)],
    ['tokenizer.chat_template', gguf.str(CHAT_TEMPLATE)],
  ];
}

/** Writes a demo qwen2 GGUF model to `opts.outPath`. */
export async function writeDemoModel(opts: WriteDemoModelOptions): Promise<DemoModelInfo> {
  const type = opts.type ?? 'q8_0';
  if (!(type in GGML_TYPES)) throw new Error(`unsupported type ${type}`);
  if (!(opts.size in DEMO_MODEL_SHAPES)) throw new Error(`unsupported size ${opts.size}`);
  const vocab = getVocab(opts.size);
  const shape: DemoModelShape = { ...DEMO_MODEL_SHAPES[opts.size], ...opts.heavier, vocab: vocab.tokens.length };
  const tensors = buildTensors(opts.size, shape, vocab, GGML_TYPES[type], (opts.seed ?? 1) >>> 0);
  const { bytes } = await writeGguf(opts.outPath, { metadata: buildMetadata(opts.size, shape, vocab, type, opts.pooling), tensors });
  return {
    size: opts.size,
    type,
    shape,
    tensors: tensors.length,
    parameters: tensors.reduce((n, x) => n + tensorElements(x.shape), 0),
    bytes,
    outPath: opts.outPath,
  };
}
