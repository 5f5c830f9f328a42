/**
 * Where decoded text goes: tool calls split out (when the request has tools), stop strings found in the
 * answer's text (not in JSON or calls, which they would cut into something that does not parse), and the
 * messages to the main thread, each carrying the tokens and log probabilities generated since the last.
 */
import type { TokenLogprob, WorkerMessage } from '../src/shared/protocol.js';
import { StopMatcher } from './stop-matcher.js';
import type { ToolCallParser } from './structured/tool-parser.js';

export class AnswerWriter {
  private readonly stops: StopMatcher;
  private tokens = 0;
  private logprobs: TokenLogprob[] = [];
  /** The stop string that ended the answer, if one did. */
  stopSequence: string | undefined;

  constructor(
    private readonly emit: (msg: WorkerMessage) => void,
    stops: readonly string[],
    private readonly parser: ToolCallParser | undefined,
    private readonly wantLogprobs: boolean,
  ) {
    this.stops = new StopMatcher(stops);
  }

  /** One more generated token (its text may come later, or never: a held byte, a stop string). */
  token(logprob?: TokenLogprob): void {
    this.tokens++;
    if (logprob) this.logprobs.push(logprob);
  }

  /** Feeds decoded text; returns true when a stop string ended the answer. */
  push(text: string): boolean {
    if (!this.parser) return this.text(text);
    for (const piece of this.parser.push(text)) {
      if (piece.kind === 'call') this.send({ type: 'tool_call', delta: piece.delta, tokens: 0 });
      else if (this.text(piece.text)) return true;
    }
    return false;
  }

  /** The end of the answer: what the parser and the stop matcher held goes out. */
  flush(): boolean {
    for (const piece of this.parser?.flush() ?? []) if (piece.kind === 'text' && this.text(piece.text)) return true;
    this.send({ type: 'text', text: this.stops.flush(), tokens: 0 });
    return false;
  }

  /** Calls in the answer so far. */
  get toolCalls(): number {
    return this.parser?.callCount ?? 0;
  }

  private text(text: string): boolean {
    const piece = this.stops.push(text);
    this.send({ type: 'text', text: piece.emit, tokens: 0 });
    this.stopSequence ??= piece.stop;
    return piece.stopped;
  }

  /** Sends a message with the tokens (and logprobs) since the last one; empty text goes only to carry logprobs. */
  private send(msg: Extract<WorkerMessage, { type: 'text' | 'tool_call' }>): void {
    if (msg.type === 'text' && msg.text === '' && this.logprobs.length === 0) return;
    msg.tokens = this.tokens;
    if (this.wantLogprobs) msg.logprobs = this.logprobs;
    this.tokens = 0;
    this.logprobs = [];
    this.emit(msg);
  }
}
