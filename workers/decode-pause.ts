/**
 * Lets KV-cache edits happen while other sequences generate.
 *
 * node-llama-cpp's batch loop holds the context lock for as long as any sequence has a decode queued,
 * and erasing a sequence's tokens waits for that lock. Under steady load the queue never empties, so
 * reusing a sequence stalled for as long as the other requests ran (measured: 15 s for a 2000-token
 * neighbour). The fix is cooperative: while an edit is pending, every generation loop in this worker
 * holds back its next decode step; the queue drains, the batch loop releases the lock, the edit runs,
 * and generation resumes. Neighbours lose about one decode step.
 */
export class DecodePause {
  private pending = 0;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  /** Runs a KV edit with every generation loop paused at its next token boundary. */
  async during<T>(edit: () => Promise<T>): Promise<T> {
    if (this.pending++ === 0) this.gate = new Promise((resolve) => (this.open = resolve));
    try {
      return await edit();
    } finally {
      if (--this.pending === 0) {
        this.open!();
        this.gate = this.open = undefined;
      }
    }
  }

  /** Generation loops await this between tokens; undefined when nothing is pending. */
  get wait(): Promise<void> | undefined {
    return this.gate;
  }
}
