/**
 * The times of one traced task, measured where the work happens (see TaskTimings). Only a traced task has a
 * timer: an untraced one pays nothing per token. A long answer's decode steps are thinned as it grows (every
 * second one is dropped and the stride doubles), so what a task reports stays bounded and evenly spread.
 */
import { threadId } from 'node:worker_threads';
import { MAX_TRACED_STEPS, nowMs, type TaskTimings } from '../src/shared/protocol.js';

export class TaskTimer {
  private readonly t: TaskTimings;

  constructor() {
    const now = nowMs();
    this.t = { worker: threadId, startedMs: now, steps: [], stepStride: 1, endMs: now };
  }

  /** The task has its sequence: its wait ends now. */
  started(): void {
    this.t.startedMs = nowMs();
  }

  grammar(fromMs: number): void {
    this.t.grammar = [fromMs, nowMs()];
  }

  /** Token `n` (counted from 1) was sampled; for an embedding, n = 1 when it is computed. */
  token(n: number): void {
    const now = nowMs();
    this.t.lastMs = now;
    if (n === 1) {
      this.t.firstMs = now;
      return;
    }
    if ((n - 1) % this.t.stepStride !== 0) return;
    this.t.steps.push(now);
    if (this.t.steps.length <= MAX_TRACED_STEPS) return;
    // Keep the steps at multiples of the doubled stride (the odd indexes of the old one).
    this.t.steps = this.t.steps.filter((_, j) => j % 2 === 1);
    this.t.stepStride *= 2;
  }

  toolCall(): void {
    this.t.toolCallMs ??= nowMs();
  }

  end(): TaskTimings {
    this.t.endMs = nowMs();
    return this.t;
  }
}
