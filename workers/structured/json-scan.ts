/**
 * Finds where a JSON value ends in text that arrives piece by piece (tool-call arguments are followed by
 * the call's closing text, which can begin with `}` too).
 */
export class JsonValueScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private begun = false;

  /** Scans one character; returns true when it completes the value. */
  push(c: string): boolean {
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (c === '\\') this.escaped = true;
      else if (c === '"') {
        this.inString = false;
        return this.depth === 0;
      }
      return false;
    }
    if (!this.begun && /\s/.test(c)) return false;
    this.begun = true;
    if (c === '"') this.inString = true;
    else if (c === '{' || c === '[') this.depth++;
    else if (c === '}' || c === ']') return --this.depth === 0;
    // Scalars (numbers, true, false, null) at the top level end at the next delimiter, which is not theirs;
    // arguments are always objects, so the scanner does not need to handle them.
    return false;
  }

  get started(): boolean {
    return this.begun;
  }
}
