/**
 * Splits text at the special tokens it contains, in linear time, exactly as llama.cpp's
 * `tokenizer_st_partition` does before it runs the BPE / SentencePiece tokenizer on the plain pieces.
 *
 * Why not let llama.cpp do it: its partition keeps the pieces in a linked list and, for every match, walks
 * the list from its head twice (`std::distance`, `std::next`), so its cost grows with the square of the
 * number of special tokens in the text: 80k `<|im_start|>` took 60 s, 10k `<tool_call>` 0.25 s
 * (docs/performance.md). User-defined tokens (Qwen's `<tool_call>`) are split even when special tokens are
 * not parsed, so any chat message could do that to a worker. Here the pieces are an array rebuilt once
 * per special token: O(special tokens in the vocabulary × text length). The plain pieces then contain no
 * special text at all, and llama.cpp's own partition of each of them finds nothing.
 *
 * The rules, as llama.cpp's: special tokens are tried longest text first (ties by id); each splits every
 * plain piece at its non-overlapping occurrences, left to right; control and unknown tokens only when
 * special tokens are parsed, user-defined ones always; a token with `lstrip` / `rstrip` eats the ASCII
 * whitespace before / after it.
 */

export interface SpecialTokenInfo {
  id: number;
  text: string;
  /** Control or unknown: parsed only when special tokens are (user-defined tokens always are). */
  control: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
}

/** A piece of text: plain text to tokenize, or a special token's id. */
export type Piece = string | number;

/** C's isspace() over one UTF-16 unit, which is what llama.cpp applies to bytes (ASCII only). */
const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** Plain text [start, end) of the original string, or a token. */
type Span = { start: number; end: number } | number;

export class SpecialTokenSplitter {
  private readonly tokens: SpecialTokenInfo[];

  constructor(tokens: readonly SpecialTokenInfo[]) {
    this.tokens = tokens.filter((t) => t.text.length > 0).sort((a, b) => b.text.length - a.text.length || a.id - b.id);
  }

  /** Special tokens known to the splitter, in the order they are tried. */
  get size(): number {
    return this.tokens.length;
  }

  split(text: string, parseSpecial: boolean): Piece[] {
    if (text.length === 0) return [];
    let spans: Span[] = [{ start: 0, end: text.length }];
    for (const token of this.tokens) {
      if (token.control && !parseSpecial) continue;
      // Most special tokens do not occur at all: test the whole text once before rebuilding anything.
      if (!text.includes(token.text)) continue;
      const next: Span[] = [];
      const finder = new OccurrenceFinder(text, token.text);
      for (const span of spans) {
        if (typeof span === 'number') next.push(span);
        else splitSpan(finder, span, token, next);
      }
      spans = next;
    }
    return spans.map((s) => (typeof s === 'number' ? s : text.slice(s.start, s.end)));
  }
}

/**
 * The occurrences of one token's text, asked for in increasing positions. The next occurrence is kept
 * between spans: searching each span with a fresh indexOf would scan past its end to the next occurrence
 * (or the end of the text) every time, quadratic again when there are many spans and few occurrences.
 */
class OccurrenceFinder {
  private found = -2;

  constructor(
    readonly text: string,
    readonly needle: string,
  ) {}

  /** The first occurrence at or after `from`, or -1. */
  from(from: number): number {
    if (this.found !== -1 && this.found < from) this.found = this.text.indexOf(this.needle, from);
    return this.found;
  }
}

/** Appends the pieces of one plain span split at `token`'s occurrences (llama.cpp's loop, with its strips). */
function splitSpan(finder: OccurrenceFinder, span: { start: number; end: number }, token: SpecialTokenInfo, out: Span[]): void {
  const { text } = finder;
  let start = span.start;
  const { end } = span;
  for (;;) {
    const match = finder.from(start);
    if (match === -1 || match + token.text.length > end) break;
    let leftEnd = match;
    if (token.lstrip) while (leftEnd > start && isSpace(text.charCodeAt(leftEnd - 1))) leftEnd--;
    if (leftEnd > start) out.push({ start, end: leftEnd });
    out.push(token.id);
    start = match + token.text.length;
    if (token.rstrip) while (start < end && isSpace(text.charCodeAt(start))) start++;
  }
  if (start < end) out.push({ start, end });
}
