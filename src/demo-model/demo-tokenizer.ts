/**
 * Byte-level BPE vocabulary (llama.cpp `gpt2` tokenizer model, `qwen2` pre-tokenizer)
 * for the demo models, plus the tiny model's script pieces.
 *
 * Vocabulary layout:
 *   - ids 0..255: the 256 GPT-2 byte-level symbols, in GPT-2's bytes_to_unicode order
 *     (so id 0 is "!", like GPT-2's and Qwen's vocab.json);
 *   - merges learned by a small BPE trainer on an embedded English corpus;
 *   - the script pieces (see SCRIPT_PIECES) that are not already byte tokens;
 *   - tiny: the three ChatML specials at the end;
 *     full: placeholders `[PAD<id>]` (type UNUSED) up to 151643, Qwen2.5's 22 added tokens
 *     at their real ids (151643..151664), placeholders up to 151936.
 */
import { BYTE_ORDER, BYTE_TO_SYMBOL, fromByteLevel, toByteLevel } from '../tokenizer/byte-level.js';

/** The llama.cpp token types the demo vocabularies use (llama.cpp's values; 2 is UNKNOWN, 6 BYTE). */
export enum TokenType {
  NORMAL = 1,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** C0 and C1 control characters and DEL, except "\n". */
const isControl = (c: number) => (c <= 0x1f && c !== 0x0a) || (c >= 0x7f && c <= 0x9f);

/** Whether a vocab token decodes to complete, valid UTF-8 text without control characters (except "\n"). */
export function isCleanTextToken(text: string): boolean {
  const bytes = fromByteLevel(text);
  if (bytes == null) return false;
  try {
    return ![...utf8.decode(bytes)].some((ch) => isControl(ch.codePointAt(0)!));
  } catch {
    return false;
  }
}

/** Qwen2's pre-tokenizer regex (as in llama.cpp / HF tokenizer.json). */
const QWEN2_PRETOKENIZE =
  /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

const CORPUS = `
The quick brown fox jumps over the lazy dog. Hello there! How are you today? I am fine, thank you.
This is a small model that is used for testing the server. It is not a real language model, and
its weights are random. The server should answer requests from many users at the same time, and it
should report what it is doing through metrics. When a request comes in, the server reads the prompt,
turns the text into tokens, and then generates new tokens one at a time until the answer is complete.
Please write a short story about a cat who wanted to see the sea. Once upon a time there was a little
cat. She lived in a house with a garden, and every day she looked at the birds and the trees. What is
the capital of France? The capital of France is Paris. Can you help me with my homework? Of course,
I would be happy to help. Explain how the internet works in simple words. Computers talk to each other
by sending small packets of information. The weather is nice, so we are going for a walk in the park.
Thank you very much for your help. You're welcome! Let's start with the first question, then we'll see.
def main(): print('hello world') return 0 # numbers 1 2 3 10 42 100 2024
`;

/** Learns `count` byte-level BPE merges from `corpus` (ties broken by pair text, deterministic). */
function trainMerges(corpus: string, count: number): string[] {
  const words = new Map<string, number>();
  for (const m of corpus.matchAll(QWEN2_PRETOKENIZE)) {
    const w = toByteLevel(m[0]);
    words.set(w, (words.get(w) ?? 0) + 1);
  }
  const entries = [...words].map(([w, n]) => ({ syms: [...w], n }));
  const merges: string[] = [];
  while (merges.length < count) {
    const pairs = new Map<string, number>();
    for (const { syms, n } of entries)
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = `${syms[i]} ${syms[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    let best: string | undefined;
    let bestN = 1;
    for (const [key, n] of pairs) if (n > bestN || (n === bestN && best != null && key < best)) [best, bestN] = [key, n];
    if (best == null) break; // nothing occurs twice any more
    merges.push(best);
    const [a, b] = best.split(' ') as [string, string];
    for (const e of entries) {
      const out: string[] = [];
      for (let i = 0; i < e.syms.length; i++) {
        if (i + 1 < e.syms.length && e.syms[i] === a && e.syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(e.syms[i]!);
      }
      e.syms = out;
    }
  }
  return merges;
}

/**
 * The tiny model's script: each piece is one token, and all pieces are distinct tokens.
 * "你" (E4 BD A0) and "。" (E3 80 82) are each split across two tokens: a lone UTF-8 lead byte
 * and a two-byte continuation token.
 *
 * No piece is ever the last token of tokenized valid UTF-8 text, so every prompt (ending in
 * ordinary text or a special token) makes the model start the script from its beginning:
 * multi-byte pieces have no merge path (or cross pre-tokenizer boundaries), and a lone lead
 * byte is always followed by its continuation bytes.
 */
export const SCRIPT_PIECES: ReadonlyArray<string | readonly number[]> = [
  'Hello,',
  ' world! ',
  [0xe4],
  [0xbd, 0xa0],
  '好，',
  '世界',
  [0xe3],
  [0x80, 0x82],
  ' Héllo',
  ' again.',
];

const QWEN_SPECIALS_FIRST_ID = 151643;
/** Qwen2.5's added tokens, starting at id 151643. `<tool_call>` and `</tool_call>` are not "special". */
const QWEN_SPECIALS: readonly string[] = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
  '<tool_call>',
  '</tool_call>',
  '<|fim_prefix|>',
  '<|fim_middle|>',
  '<|fim_suffix|>',
  '<|fim_pad|>',
  '<|repo_name|>',
  '<|file_sep|>',
];
const QWEN_VOCAB_SIZE = 151936;

/**
 * Qwen2.5-Instruct's own chat template (tokenizer_config.json of the released models), tools included:
 * tool definitions go into the system turn, assistant tool calls are `<tool_call>` JSON blocks and tool
 * results `<tool_response>` blocks in a user turn. Default system prompt "You are Qwen, created by
 * Alibaba Cloud. You are a helpful assistant.".
 */
export const CHAT_TEMPLATE = [
  '{%- if tools %}',
  "{{- '<|im_start|>system\\n' }}",
  "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}",
  "{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}",
  '{{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}',
  '{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}',
  '{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}',
  '{%- else %}',
  "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}",
  "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}",
  '{%- endif %}',
  '{%- for message in messages %}',
  '{%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}',
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}",
  '{%- elif message.role == "assistant" %}',
  "{{- '<|im_start|>' + message.role }}",
  "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}",
  '{%- for tool_call in message.tool_calls %}',
  '{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}',
  '{{- \'\\n<tool_call>\\n{"name": "\' }}{{- tool_call.name }}{{- \'", "arguments": \' }}{{- tool_call.arguments | tojson }}{{- \'}\\n</tool_call>\' }}',
  '{%- endfor %}',
  "{{- '<|im_end|>\\n' }}",
  '{%- elif message.role == "tool" %}',
  '{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}{{- \'<|im_start|>user\' }}{%- endif %}',
  "{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}",
  '{%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- \'<|im_end|>\\n\' }}{%- endif %}',
  '{%- endif %}',
  '{%- endfor %}',
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
].join('');

export interface DemoVocab {
  tokens: string[];
  types: TokenType[];
  merges: string[];
  endOfText: number;
  imStart: number;
  imEnd: number;
  /** Token ids of SCRIPT_PIECES, in order. */
  scriptIds: number[];
}

const MERGE_COUNT = 200;

export function buildDemoVocab(size: 'tiny' | 'full'): DemoVocab {
  const tokens: string[] = BYTE_ORDER.map((b) => BYTE_TO_SYMBOL[b]!);
  const types: TokenType[] = tokens.map(() => TokenType.NORMAL);
  const ids = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const add = (text: string, type: TokenType): number => {
    if (ids.has(text)) throw new Error(`duplicate token ${JSON.stringify(text)}`);
    ids.set(text, tokens.length);
    tokens.push(text);
    types.push(type);
    return tokens.length - 1;
  };

  const merges = trainMerges(CORPUS, MERGE_COUNT);
  for (const m of merges) add(m.replace(' ', ''), TokenType.NORMAL);

  const scriptIds = SCRIPT_PIECES.map((p) => {
    const text = toByteLevel(p);
    return ids.get(text) ?? add(text, TokenType.NORMAL);
  });
  if (new Set(scriptIds).size !== scriptIds.length) throw new Error('script token ids must be distinct');

  const specialType = (s: string): TokenType => (s.startsWith('<|') ? TokenType.CONTROL : TokenType.USER_DEFINED);
  if (size === 'tiny') {
    for (const s of QWEN_SPECIALS.slice(0, 3)) add(s, TokenType.CONTROL);
    // The tool-call markers (user-defined: they detokenize as text) and the fill-in-the-middle tokens, as in
    // the real vocabulary.
    for (const s of ['<tool_call>', '</tool_call>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>']) add(s, specialType(s));
  } else {
    while (tokens.length < QWEN_SPECIALS_FIRST_ID) add(`[PAD${tokens.length}]`, TokenType.UNUSED);
    for (const s of QWEN_SPECIALS) add(s, specialType(s));
    while (tokens.length < QWEN_VOCAB_SIZE) add(`[PAD${tokens.length}]`, TokenType.UNUSED);
  }
  return {
    tokens,
    types,
    merges,
    endOfText: ids.get('<|endoftext|>')!,
    imStart: ids.get('<|im_start|>')!,
    imEnd: ids.get('<|im_end|>')!,
    scriptIds,
  };
}
