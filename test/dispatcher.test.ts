/**
 * The dispatcher with a fake engine whose task channel can deliver its messages late: the final message
 * may arrive after the task has settled (two ports, no order between them), and the request must still end
 * with it; a task that settles with no final message at all fails as worker_failed after the grace.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import type { Engine, EngineEvents, EngineTask, TaskChannel } from '../src/engine/engine.js';
import { FINAL_MESSAGE_GRACE_MS, finalOrGrace } from '../src/engine/final-message.js';
import { createLogger } from '../src/log.js';
import { Dispatcher } from '../src/dispatch/dispatcher.js';
import type { JobHandlers, JobOutcome } from '../src/dispatch/job.js';
import type { WorkerMessage } from '../src/shared/protocol.js';

/** An engine with one sequence whose tasks settle at once and deliver `messages` after `delayMs`. */
class LateEngine extends EventEmitter<EngineEvents> {
  readonly index = 0;
  readonly device = 'local';
  readonly labels = undefined;
  readonly workers = 1;
  readonly readyWorkers = 1;
  readonly sequencesPerWorker = 1;
  readySequences = 1;
  constructor(
    private readonly messages: WorkerMessage[],
    private readonly delayMs: number,
  ) {
    super();
  }
  run(_task: EngineTask): TaskChannel {
    let listener: ((m: WorkerMessage) => void) | undefined;
    let closed = false;
    setTimeout(() => {
      for (const m of this.messages) if (!closed) listener?.(m);
    }, this.delayMs);
    return {
      onMessage: (l) => (listener = l),
      send: () => {},
      close: () => (closed = true),
      settled: Promise.resolve(),
    };
  }
  collect(): never {
    throw new Error('not used');
  }
  status(): never {
    throw new Error('not used');
  }
  whenReady = () => Promise.resolve();
  close = () => Promise.resolve();
}

function submit(engine: LateEngine, count = 1) {
  const outcomes: JobOutcome[] = [];
  const dispatcher = new Dispatcher([engine as unknown as Engine], { maxQueue: 4, requestTimeoutSeconds: 60 }, createLogger('silent'), {
    queueFull: () => {},
    started: () => {},
    ended: (o) => outcomes.push(o),
  });
  const calls: string[] = [];
  const handlers: JobHandlers = {
    onStarted: (n) => calls.push(`started ${n}`),
    onText: (t) => calls.push(`text ${t}`),
    onDone: (reason, usage) => calls.push(`done ${reason} ${usage.completionTokens}`),
    onError: (err) => calls.push(`error ${err.code}`),
  };
  const jobs = Array.from({ length: count }, (_, i) =>
    dispatcher.submit({ requestId: `r${i}`, input: { kind: 'text', prompt: 'x' }, sampling: {} as never }, handlers),
  );
  return { job: jobs[0]!, jobs, calls, outcomes, dispatcher };
}

const DONE: WorkerMessage[] = [
  { type: 'started', promptTokens: 3 },
  { type: 'text', text: 'hi', tokens: 1 },
  { type: 'done', finishReason: 'length', promptTokens: 3, completionTokens: 1 },
];

describe('dispatcher: admission follows the ready sequences', () => {
  it('with one of two workers ready, a second request waits in the queue (counted), not inside the pool', async () => {
    const engine = new LateEngine(DONE, 20);
    engine.readySequences = 1; // 2 workers × 1 sequence, one of them still loading
    const { jobs, dispatcher } = submit(engine, 2);
    expect(dispatcher.runningCount).toBe(1);
    expect(dispatcher.waitingCount).toBe(1);
    expect(jobs.map((j) => j.state)).toEqual(['running', 'queued']);
    await Promise.all(jobs.map((j) => j.ended));
    await dispatcher.idle();
    expect(dispatcher.waitingCount).toBe(0);
  });
});

describe('dispatcher: the final message after the task settled', () => {
  it('ends the request with a final message that arrives 50 ms after the task settled (not as worker_failed)', async () => {
    const { job, calls, outcomes, dispatcher } = submit(new LateEngine(DONE, 50));
    await job.ended;
    expect(calls).toEqual(['started 3', 'text hi', 'done length 1']);
    expect(outcomes).toEqual([{ kind: 'finished', reason: 'length' }]);
    await dispatcher.idle();
  });

  it('fails a settled task whose final message never comes, once the grace is over, with exactly one final call', async () => {
    vi.useFakeTimers();
    try {
      const { job, calls, outcomes } = submit(new LateEngine([], 10 * FINAL_MESSAGE_GRACE_MS));
      await vi.advanceTimersByTimeAsync(FINAL_MESSAGE_GRACE_MS - 100);
      expect(calls).toEqual([]);
      await vi.advanceTimersByTimeAsync(200);
      await job.ended;
      expect(calls).toEqual(['error worker_failed']);
      expect(outcomes).toEqual([{ kind: 'finished', reason: 'error' }]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('finalOrGrace resolves with the final message or at the grace, whichever is first', async () => {
    vi.useFakeTimers();
    try {
      let done = false;
      void finalOrGrace(new Promise(() => {}), 1000).then(() => (done = true));
      await vi.advanceTimersByTimeAsync(999);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(done).toBe(true);
      let early = false;
      void finalOrGrace(Promise.resolve(), 1000).then(() => (early = true));
      await vi.advanceTimersByTimeAsync(0);
      expect(early).toBe(true);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
