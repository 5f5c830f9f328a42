/**
 * Turns a stream of tokens into text without breaking multi-byte UTF-8 characters: byte-level BPE
 * tokens can end in the middle of a character, which detokenizes to U+FFFD. Such tokens are held
 * until the character completes (at most 4 bytes, so at most 4 tokens are held).
 */
import type { LlamaModel, Token } from 'node-llama-cpp';

const REPLACEMENT = '\uFFFD';
const MAX_HELD = 4;

export class TokenTextDecoder {
  private pending: Token[] = [];
  private recent: Token[] = [];

  constructor(private readonly model: LlamaModel) {}

  push(token: Token): string {
    this.pending.push(token);
    const text = this.model.detokenize(this.pending, false, this.recent);
    if (text.endsWith(REPLACEMENT) && this.pending.length < MAX_HELD) return '';
    return this.take(text);
  }

  /** Whatever is held at the end of generation (an incomplete character stays U+FFFD). */
  flush(): string {
    if (this.pending.length === 0) return '';
    return this.take(this.model.detokenize(this.pending, false, this.recent));
  }

  private take(text: string): string {
    this.recent = [...this.recent, ...this.pending].slice(-MAX_HELD);
    this.pending = [];
    return text;
  }
}
