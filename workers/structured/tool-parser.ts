/**
 * Splits generated text into answer text and tool calls, as it streams. In a free answer (tool_choice
 * auto) text that could begin a call's trigger is held back until it is decided, so a call never leaks
 * into the answer's content; once the trigger appears, the rest is read as calls. A forced answer
 * (required / a named function) is calls from its first character.
 *
 * The calls are grammar-constrained (grammar.ts), so the parser expects the exact syntax; if the text does
 * not follow it (a call the grammar could not be attached to), what was held is handed back as text.
 */
import type { ToolCallDelta } from '../../src/shared/protocol.js';
import { JsonValueScanner } from './json-scan.js';
import type { ToolCallSyntax } from './tool-syntax.js';

export type Piece = { kind: 'text'; text: string } | { kind: 'call'; delta: ToolCallDelta };

type Phase = 'text' | 'prefix' | 'name' | 'args' | 'suffix' | 'between' | 'failed';

export class ToolCallParser {
  private phase: Phase;
  private buffer = '';
  /** Text of the call section so far, handed back if it turns out not to be one. */
  private section = '';
  private calls = 0;
  private scanner = new JsonValueScanner();
  /** Set when the trigger was just seen: the caller attaches the calls grammar. */
  engagedWith: string | undefined;

  constructor(
    private readonly syntax: ToolCallSyntax,
    forced: boolean,
  ) {
    this.phase = forced ? 'prefix' : 'text';
  }

  /** Calls begun so far. */
  get callCount(): number {
    return this.calls;
  }

  push(text: string): Piece[] {
    const out: Piece[] = [];
    this.buffer += text;
    // Each step consumes text or moves to another phase; stop when one does neither (it needs more text).
    for (;;) {
      const [buffer, phase] = [this.buffer, this.phase];
      this.step(out);
      if (this.buffer === buffer && this.phase === phase) break;
    }
    return out;
  }

  /** The end of the answer: text still held (an unfinished trigger or call) goes out as text. */
  flush(): Piece[] {
    if (this.phase === 'text' || this.phase === 'failed' || this.calls === 0) {
      const rest = this.phase === 'text' || this.phase === 'failed' ? this.buffer : this.section + this.buffer;
      this.buffer = '';
      return rest ? [{ kind: 'text', text: rest }] : [];
    }
    return [];
  }

  private step(out: Piece[]): void {
    const { syntax } = this;
    switch (this.phase) {
      case 'text': {
        const at = syntax.trigger === '' ? -1 : this.buffer.indexOf(syntax.trigger);
        if (at === -1) {
          const hold = heldLength(this.buffer, syntax.trigger);
          emitText(out, this.buffer.slice(0, this.buffer.length - hold));
          this.buffer = this.buffer.slice(this.buffer.length - hold);
          return;
        }
        emitText(out, this.buffer.slice(0, at));
        this.buffer = this.buffer.slice(at);
        this.engagedWith = this.buffer;
        this.phase = 'prefix';
        return;
      }
      case 'prefix':
        return this.expect(syntax.prefix, 'name');
      case 'name': {
        const at = this.buffer.indexOf(syntax.paramsPrefix);
        if (at === -1) return;
        const name = this.buffer.slice(0, at);
        this.take(at + syntax.paramsPrefix.length);
        this.scanner = new JsonValueScanner();
        out.push({ kind: 'call', delta: { index: this.calls++, name, arguments: '' } });
        this.phase = 'args';
        return;
      }
      case 'args': {
        let end = -1;
        for (let i = 0; i < this.buffer.length; i++) {
          if (this.scanner.push(this.buffer[i]!)) {
            end = i + 1;
            break;
          }
        }
        const args = this.buffer.slice(0, end === -1 ? this.buffer.length : end);
        this.take(args.length);
        const trimmed = this.scanner.started ? args : args.trimStart();
        if (trimmed) out.push({ kind: 'call', delta: { index: this.calls - 1, arguments: trimmed } });
        if (end !== -1) this.phase = 'suffix';
        return;
      }
      case 'suffix':
        return this.expect(syntax.suffix, 'between');
      case 'between':
        return this.expect(syntax.between, 'prefix');
      case 'failed':
        emitText(out, this.buffer);
        this.buffer = '';
        return;
    }
  }

  /** Consumes `literal` when the buffer holds it; fails when the buffer cannot be its start. */
  private expect(literal: string, next: Phase): void {
    if (this.buffer.startsWith(literal)) {
      this.take(literal.length);
      this.phase = next;
    } else if (!literal.startsWith(this.buffer)) {
      // Not the syntax: before any call, everything held is answer text after all.
      this.phase = 'failed';
      if (this.calls === 0) {
        this.buffer = this.section + this.buffer;
        this.section = '';
      }
    }
  }

  private take(n: number): void {
    this.section += this.buffer.slice(0, n);
    this.buffer = this.buffer.slice(n);
  }
}

function emitText(out: Piece[], text: string): void {
  if (text) out.push({ kind: 'text', text });
}

/** Longest end of `text` that is a proper start of `marker`. */
function heldLength(text: string, marker: string): number {
  for (let len = Math.min(marker.length - 1, text.length); len > 0; len--) {
    if (text.endsWith(marker.slice(0, len))) return len;
  }
  return 0;
}
