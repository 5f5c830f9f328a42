/**
 * N-gram lookup drafting (prompt lookup): an answer that quotes its input, or repeats itself, continues the way
 * the same few tokens continued before. The index keeps, for each n-gram of the history (the prompt, then every
 * token the request accepted), where it last ended; a draft is what followed the most recent earlier occurrence of
 * the history's last n tokens, the longest n first. Pushing a token and looking up a draft cost a few map
 * operations each, whatever the history's length.
 */
import type { Token } from 'node-llama-cpp';

const MAX_MATCH = 32;

export class NgramIndex {
  private readonly history: Token[] = [];
  /** ends[n]: hash of the n tokens ending at position i → i, filled one token late (the suffix never finds itself). */
  private readonly ends: Map<number, number>[];
  /** Tokens before the last draft's continuation that equal the history's last ones (at most MAX_MATCH). */
  private matched = 0;

  constructor(
    private readonly minN: number,
    private readonly maxN: number,
  ) {
    this.ends = Array.from({ length: maxN + 1 }, () => new Map<number, number>());
  }

  /**
   * An index of no order: it keeps the history (what a draft model must hold, draft-model.ts) and drafts nothing,
   * so pushing a token is one array write instead of a hash and a map write per order.
   */
  static historyOnly(): NgramIndex {
    return new NgramIndex(1, 0);
  }

  /**
   * How many of the history's last tokens the last draft's earlier occurrence repeats (at most 32): a long match is a
   * passage being copied, a short one (2-3 tokens) is as often a coincidence of free text.
   */
  get lastMatch(): number {
    return this.matched;
  }

  get length(): number {
    return this.history.length;
  }

  /** The history itself: what a draft model must hold in its cache to draft for the request (draft-model.ts). */
  get tokens(): readonly Token[] {
    return this.history;
  }

  push(token: Token): void {
    // The n-grams ending at the previous token now have a successor: index them.
    const end = this.history.length - 1;
    for (let n = this.minN; n <= this.maxN && end - n + 1 >= 0; n++) this.ends[n]!.set(this.hash(end, n), end);
    this.history.push(token);
  }

  pushAll(tokens: readonly Token[]): void {
    for (const t of tokens) this.push(t);
  }

  /**
   * Up to `max` tokens that followed the last earlier occurrence of the history's longest matching suffix; past the
   * end of the history the repetition goes on (a loop of period p continues as one). Empty when nothing matches.
   */
  draft(max: number): Token[] {
    const last = this.history.length - 1;
    this.matched = 0;
    if (max <= 0) return [];
    for (let n = Math.min(this.maxN, last); n >= this.minN; n--) {
      const end = this.ends[n]!.get(this.hash(last, n));
      if (end === undefined || !this.same(end, last, n)) continue;
      const period = last - end;
      let m = n;
      while (m < MAX_MATCH && end - m >= 0 && this.history[end - m] === this.history[last - m]) m++;
      this.matched = m;
      const tokens: Token[] = [];
      for (let j = 0; j < max; j++) {
        const at = end + 1 + j;
        tokens.push(at <= last ? this.history[at]! : tokens[j - period]!);
      }
      return tokens;
    }
    return [];
  }

  /** FNV-1a over the n token ids ending at `end`; a collision is caught by same(). */
  private hash(end: number, n: number): number {
    let h = 0x811c9dc5;
    for (let i = end - n + 1; i <= end; i++) h = Math.imul(h ^ this.history[i]!, 0x01000193);
    return h >>> 0;
  }

  private same(a: number, b: number, n: number): boolean {
    for (let i = 0; i < n; i++) if (this.history[a - i] !== this.history[b - i]) return false;
    return true;
  }
}
