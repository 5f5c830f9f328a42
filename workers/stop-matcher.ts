/**
 * Finds OpenAI `stop` strings in streamed text. Text that might be the start of a stop string is held
 * back until it is decided, so a stop string never reaches the client, even when split across tokens.
 */
export class StopMatcher {
  private buffer = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Feeds new text; returns what is safe to emit, and the stop string found, if any. */
  push(text: string): { emit: string; stopped: boolean; stop?: string } {
    if (this.stops.length === 0) return { emit: text, stopped: false };
    this.buffer += text;
    let first = -1;
    let found: string | undefined;
    for (const stop of this.stops) {
      const at = this.buffer.indexOf(stop);
      if (at !== -1 && (first === -1 || at < first)) {
        first = at;
        found = stop;
      }
    }
    if (first !== -1) {
      const emit = this.buffer.slice(0, first);
      this.buffer = '';
      return { emit, stopped: true, stop: found };
    }
    const hold = this.heldLength();
    const emit = this.buffer.slice(0, this.buffer.length - hold);
    this.buffer = this.buffer.slice(this.buffer.length - hold);
    return { emit, stopped: false };
  }

  /** The text still held back, at the end of generation. */
  flush(): string {
    const rest = this.buffer;
    this.buffer = '';
    return rest;
  }

  /** Longest suffix of the buffer that is a proper prefix of some stop string. */
  private heldLength(): number {
    let best = 0;
    for (const stop of this.stops) {
      const max = Math.min(stop.length - 1, this.buffer.length);
      for (let len = max; len > best; len--) {
        if (this.buffer.endsWith(stop.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}
