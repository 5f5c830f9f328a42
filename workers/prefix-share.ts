/**
 * Copies one sequence's KV cache into another, so a prompt prefix that some sequence already holds (a
 * shared system prompt, the same prompt from many clients) is not evaluated again on another one.
 * llama-server does the same from its prompt cache; without it every sequence pays for its first
 * evaluation of a common prompt (measured in docs/performance.md).
 *
 * node-llama-cpp's bindings have no sequence-copy call, but they save a sequence's state to a file and
 * load a state into any sequence: the file lives in a private temporary folder, removed when the copy is done
 * (about 12 KB per token for Qwen2.5-0.5B's KV cache in F16).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Token } from 'node-llama-cpp';
import type { NativeContext } from './native.js';

/** A sequence of the context and the tokens its KV cache holds, in order from position 0. */
export interface SequenceState {
  readonly id: number;
  readonly tokens: Token[];
}

/** Length of the common prefix of `a` and `b`, at most `limit`. */
export function commonPrefix(a: readonly Token[], b: readonly Token[], limit: number): number {
  const n = Math.min(a.length, b.length, limit);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class PrefixSharer {
  constructor(
    private readonly native: NativeContext,
    private readonly contextSize: number,
  ) {}

  /**
   * Replaces `to`'s cache with `from`'s and keeps its first `keep` tokens. Must run between decode steps.
   * On failure the error is thrown and `to` is left as it was (no temporary folder) or empty (its cache state
   * is unknown once loading began).
   */
  async copy(from: SequenceState, to: SequenceState, keep: number): Promise<void> {
    // No writable temporary folder: nothing was touched yet, and the caller evaluates the prompt instead.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-serve-kv-'));
    const file = path.join(dir, `${from.id}-to-${to.id}.state`);
    try {
      await this.native.saveSequenceStateToFile(file, from.id, Uint32Array.from(from.tokens));
      const loaded = await this.native.loadSequenceStateFromFile(file, to.id, this.contextSize);
      if (loaded.length < keep) throw new Error(`a copied sequence state holds ${loaded.length} tokens, not ${keep}`);
      this.native.removeTokenCellsFromSequence(to.id, keep, -1);
      to.tokens.splice(0, to.tokens.length, ...from.tokens.slice(0, keep));
    } catch (err) {
      this.native.removeTokenCellsFromSequence(to.id, 0, -1);
      to.tokens.length = 0;
      throw err;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
