/**
 * The dispatcher and Job with a fake engine (no worker, no model): admission by ready sequences; a final
 * message that arrives after the task settled (two ports, no order between them) still ends the request,
 * and a task that settles with none fails as worker_failed after the grace; exactly one final call for a
 * request cancelled while queued, timed out before or after it started, or sent extra messages.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import type { Engine, EngineEvents, EngineTask, TaskChannel } from '../src/engine/engine.js';
import { FINAL_MESSAGE_GRACE_MS, finalOrGrace } from '../src/engine/final-message.js';
import { createLogger } from '../src/log.js';
import { Dispatcher } from '../src/dispatch/dispatcher.js';
import { QueueFullError } from '../src/errors.js';
import type { JobHandlers, JobOutcome } from '../src/dispatch/job.js';
import type { WorkerMessage } from '../src/shared/protocol.js';

/**
 * An engine with one sequence whose tasks deliver `messages` after `delayMs`. They settle at once, or with
 * `running`, only when cancelled, answering the cancel as a worker does (`done` with finish reason abort).
 */
class LateEngine extends EventEmitter<EngineEvents> {
  running = false;
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
    let settle!: () => void;
    const settled = this.running ? new Promise<void>((resolve) => (settle = resolve)) : Promise.resolve();
    setTimeout(() => {
      for (const m of this.messages) if (!closed) listener?.(m);
    }, this.delayMs);
    return {
      onMessage: (l) => (listener = l),
      send: () => {
        listener?.({ type: 'done', finishReason: 'abort', promptTokens: 2, completionTokens: 0, cachedTokens: 0 });
        settle?.();
      },
      close: () => (closed = true),
      settled,
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
  const dispatcher = new Dispatcher([engine], { maxQueue: 4, requestTimeoutSeconds: 60, sequences: 1 }, createLogger('silent'), {
    queueFull: () => {},
    started: () => {},
    ended: (o) => outcomes.push(o),
  });
  const calls: string[] = [];
  const handlers: JobHandlers = {
    onStarted: (n) => calls.push(`started ${n}`),
    onText: (t) => calls.push(`text ${t}`),
    onToolCall: (d) => calls.push(`call ${d.index}`),
    onDone: (reason, usage) => calls.push(`done ${reason} ${usage.completionTokens}`),
    onError: (err) => calls.push(`error ${err.code}`),
  };
  const jobs = Array.from(
    { length: count },
    (_, i) =>
      dispatcher.submitAll(
        [{ kind: 'generate', requestId: `r${i}`, prompt: [1], promptParam: 'prompt', sampling: {} as never }],
        () => handlers,
      )[0]!,
  );
  return { job: jobs[0]!, jobs, calls, outcomes, dispatcher };
}

const DONE: WorkerMessage[] = [
  { type: 'started', promptTokens: 3 },
  { type: 'text', text: 'hi', tokens: 1 },
  { type: 'done', finishReason: 'length', promptTokens: 3, completionTokens: 1, cachedTokens: 0 },
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
      const late = finalOrGrace(new Promise(() => {}), 1000).then(() => (done = true));
      await vi.advanceTimersByTimeAsync(999);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(done).toBe(true);
      let early = false;
      const first = finalOrGrace(Promise.resolve(), 1000).then(() => (early = true));
      await vi.advanceTimersByTimeAsync(0);
      expect(early).toBe(true);
      await Promise.all([late, first]);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('job: exactly one final call', () => {
  it('a queued request cancelled by its client ends at once as abort, leaves the queue and never reaches the engine', async () => {
    const engine = new LateEngine(DONE, 10);
    engine.readySequences = 0; // nothing ready: everything queues
    const run = vi.spyOn(engine, 'run');
    const { job, calls, outcomes, dispatcher } = submit(engine);
    expect(dispatcher.waitingCount).toBe(1);
    job.cancel('client');
    job.cancel('timeout'); // a second cancel changes nothing
    await job.ended;
    expect(calls).toEqual(['done abort 0']);
    expect(outcomes).toEqual([{ kind: 'finished', reason: 'abort' }]);
    expect(dispatcher.waitingCount).toBe(0);
    engine.readySequences = 1;
    engine.emit('change');
    expect(run).not.toHaveBeenCalled();
  });

  it('a timeout while queued is a rejection (504 request_timeout); after generation began it is an abort', async () => {
    vi.useFakeTimers();
    try {
      const queued = new LateEngine(DONE, 10);
      queued.readySequences = 0;
      const a = submit(queued);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(a.calls).toEqual(['error request_timeout']);
      expect(a.outcomes).toEqual([{ kind: 'rejected', reason: 'timeout' }]);

      // Started, then silent: the timeout cancels it; the worker's own `done(abort)` reports it.
      const started = new LateEngine([{ type: 'started', promptTokens: 2 }], 0);
      started.running = true;
      const b = submit(started);
      await vi.advanceTimersByTimeAsync(1);
      expect(b.calls).toEqual(['started 2']);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(b.calls).toEqual(['started 2', 'error request_timeout']);
      expect(b.outcomes).toEqual([{ kind: 'finished', reason: 'abort' }]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('choices cancelled because a sibling failed end as abort for the client but count as sibling_failed, not as client aborts', async () => {
    // One sequence: the first choice runs (until cancelled: its worker then answers done/abort), the second is queued.
    const engine = new LateEngine([], 0);
    engine.running = true;
    const { jobs, calls, outcomes, dispatcher } = submit(engine, 2);
    expect(jobs.map((j) => j.state)).toEqual(['running', 'queued']);
    for (const job of jobs) job.cancel('sibling_failed');
    await Promise.all(jobs.map((j) => j.ended));
    expect(calls).toEqual(['done abort 0', 'done abort 0']);
    expect(outcomes).toEqual([
      { kind: 'finished', reason: 'sibling_failed' },
      { kind: 'finished', reason: 'sibling_failed' },
    ]);
    await dispatcher.idle();
  });

  it('messages after the final one and a late settle add no second final call', async () => {
    const engine = new LateEngine(
      [
        ...DONE,
        {
          type: 'error',
          error: { status: 500, type: 'server_error', code: 'x', message: 'late', param: null },
          promptTokens: 3,
          completionTokens: 1,
        },
      ],
      0,
    );
    const { job, calls, outcomes, dispatcher } = submit(engine);
    await job.ended;
    // The late message came in the same turn as the final one; the settle is handled once idle() resolves.
    await dispatcher.idle();
    expect(calls).toEqual(['started 3', 'text hi', 'done length 1']);
    expect(outcomes).toHaveLength(1);
  });
});

describe('dispatcher: places held while requests are prepared', () => {
  it('reserve() refuses at once when every sequence and queue place is taken or held, and counts it', () => {
    const outcomes: string[] = [];
    const engine = new LateEngine([], 0) as unknown as Engine;
    const dispatcher = new Dispatcher([engine], { maxQueue: 1, requestTimeoutSeconds: 60, sequences: 1 }, createLogger('silent'), {
      queueFull: () => outcomes.push('queue_full'),
      started: () => {},
      ended: () => {},
    });
    const a = dispatcher.reserve();
    const b = dispatcher.reserve();
    expect(() => dispatcher.reserve()).toThrow(QueueFullError);
    expect(outcomes).toEqual(['queue_full']);
    a();
    a(); // giving a place back twice frees it once
    const c = dispatcher.reserve();
    expect(() => dispatcher.reserve()).toThrow(QueueFullError);
    b();
    c();
  });
});

describe("dispatcher: a request's choices are admitted together or not at all", () => {
  function twoPlaces() {
    const counted: string[] = [];
    const engine = new LateEngine([], 0);
    engine.running = true; // tasks hold their sequence until cancelled
    const dispatcher = new Dispatcher([engine], { maxQueue: 1, requestTimeoutSeconds: 60, sequences: 1 }, createLogger('silent'), {
      queueFull: () => counted.push('queue_full'),
      started: () => counted.push('started'),
      ended: (o) => counted.push(`ended ${o.kind}`),
    });
    const handlers = (): JobHandlers => ({
      onStarted: () => {},
      onText: () => {},
      onToolCall: () => {},
      onDone: () => {},
      onError: () => {},
    });
    const task = (i: number) => ({
      kind: 'generate' as const,
      requestId: `r${i}`,
      prompt: [1],
      promptParam: 'prompt',
      sampling: {} as never,
    });
    return { dispatcher, counted, handlers, task };
  }

  it('reserve(places) holds one place per choice: three choices do not fit one sequence and one queue place', () => {
    const { dispatcher, counted } = twoPlaces();
    expect(() => dispatcher.reserve(3)).toThrow(QueueFullError);
    expect(counted).toEqual(['queue_full']);
    dispatcher.reserve(2)();
  });

  it('submitAll() refuses a request whose choices do not all fit, before starting any of them', async () => {
    const { dispatcher, counted, handlers, task } = twoPlaces();
    expect(() => dispatcher.submitAll([task(0), task(1), task(2)], handlers)).toThrow(QueueFullError);
    // Nothing ran, nothing waits, and the request is counted once, as refused: not as started or finished.
    expect(counted).toEqual(['queue_full']);
    expect(dispatcher.runningCount + dispatcher.waitingCount + dispatcher.activeCount).toBe(0);
    const jobs = dispatcher.submitAll([task(0), task(1)], handlers);
    expect(jobs.map((j) => j.state)).toEqual(['running', 'queued']);
    for (const job of jobs) job.cancel('client');
    await dispatcher.idle();
  });
});
