/**
 * Tokenization of client text in linear time: special tokens are split out by SpecialTokenSplitter, and
 * only the plain pieces go to llama.cpp (which then finds no special text in them). The result is the one
 * llama.cpp gives for the whole text (test/tokenizer.test.ts compares them), without its quadratic partition.
 *
 * `asTokenizer()` has node-llama-cpp's Tokenizer signature, so chat templates (LlamaText.tokenize) use it
 * for the messages they render.
 */
import type { BuiltinSpecialTokenValue, LlamaModel, Token, Tokenizer } from 'node-llama-cpp';
import { SpecialTokenSplitter, type SpecialTokenInfo } from './special-split.js';

export class TextTokenizer {
  private readonly splitter: SpecialTokenSplitter;

  constructor(private readonly model: LlamaModel) {
    this.splitter = new SpecialTokenSplitter(specialTokens(model));
  }

  tokenize(text: string, special: boolean, options?: 'trimLeadingSpace'): Token[] {
    const out: Token[] = [];
    const pieces = this.splitter.split(text, special);
    pieces.forEach((piece, i) => {
      if (typeof piece === 'number') out.push(piece as Token);
      // Only the text's own start takes the caller's option; later pieces follow a special token, where
      // llama.cpp starts a fresh tokenizer session too (each piece alone gives the same tokens).
      else for (const t of this.model.tokenize(piece, false, i === 0 ? options : undefined)) out.push(t);
    });
    return out;
  }

  /** node-llama-cpp's Tokenizer interface over this one (its 'builtin' special tokens pass through). */
  asTokenizer(): Tokenizer {
    const model = this.model;
    const tokenize = (text: string, special?: boolean | 'builtin', options?: 'trimLeadingSpace'): Token[] =>
      special === 'builtin' ? model.tokenize(text as BuiltinSpecialTokenValue, 'builtin') : this.tokenize(text, special === true, options);
    return Object.assign(tokenize, { detokenize: model.detokenize.bind(model), isSpecialToken: model.isSpecialToken.bind(model) }) as never;
  }
}

/**
 * The tokens llama.cpp splits text at: those it loaded as control, user-defined or unknown. The loaded
 * attributes are read for every token because llama.cpp marks some tokens control by their text, whatever
 * their GGUF type (end-of-turn tokens of some models); a pass over 152k tokens at load.
 */
function specialTokens(model: LlamaModel): SpecialTokenInfo[] {
  const { tokens } = model.fileInfo.metadata.tokenizer.ggml;
  const out: SpecialTokenInfo[] = [];
  for (let id = 0; id < tokens.length; id++) {
    const attrs = model.getTokenAttributes(id as Token);
    if (!attrs.control && !attrs.userDefined && !attrs.unknown) continue;
    out.push({ id, text: tokens[id]!, control: attrs.control || attrs.unknown, lstrip: attrs.lstrip, rstrip: attrs.rstrip });
  }
  return out;
}
