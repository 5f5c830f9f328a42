/**
 * The worker's batch loop on the real engine (the tiny scripted model, in this process): N concurrent
 * requests share every decode step, a late request's prompt joins the others' step, prefix reuse,
 * cancellation, a failing request that costs only itself, and failures of the loop (a step, a cache edit,
 * the loop itself) that cost only the requests they concern.
 */
import type { Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TINY_SCRIPT_TOKEN_IDS } from '../src/demo-model/demo-model.js';
import { BatchLoop, type LoopFault, type StepStats } from '../workers/batch-loop.js';
import { loadModel, type LoadedModel } from '../workers/model.js';
import { NativeApiError, nativeContext, type NativeContext } from '../workers/native.js';
import { tinyWorkerInit } from './helpers/worker-init.js';

const SEQUENCES = 4;
let loaded: LoadedModel;
const steps: StepStats[] = [];

beforeAll(async () => {
  const model = await loadModel(tinyWorkerInit(inject('tinyModel'), SEQUENCES), { onStep: (s) => steps.push(s) });
  if (model.kind !== 'generate') throw new Error('the tiny model is a text-generation model');
  loaded = model;
});

afterAll(async () => {
  await loaded?.context.dispose();
  await loaded?.model.dispose();
});

interface Run {
  tokens: Token[];
  done: Promise<{ reusedTokens: number }>;
}

/** Starts a greedy generation of `count` tokens on sequence `seqIndex`. */
function start(
  seqIndex: number,
  prompt: Token[],
  count: number,
  opts: { cancelled?: () => boolean; onToken?: (n: number) => void } = {},
): Run {
  const sampler = loaded.createSampler();
  sampler.applyConfig({ temperature: 0, minP: 0, topK: 0, topP: 1, seed: 1 });
  const tokens: Token[] = [];
  const done = loaded.loop
    .run({
      sequence: seqs[seqIndex]!,
      prompt,
      sampler,
      cancelled: opts.cancelled ?? (() => false),
      onToken: (t) => {
        tokens.push(t);
        opts.onToken?.(tokens.length);
        return tokens.length < count;
      },
    })
    .finally(() => sampler.dispose());
  return { tokens, done };
}

let seqs: Awaited<ReturnType<LoadedModel['sequences']['acquire']>>[] = [];
beforeAll(async () => {
  seqs = await Promise.all(Array.from({ length: SEQUENCES }, () => loaded.sequences.acquire()));
});

const prompt = (n: number, salt = 0): Token[] => Array.from({ length: n }, (_, i) => (100 + ((i * 7 + salt) % 50)) as Token);

describe('batch loop', () => {
  it('decodes N concurrent requests in one step per token: prompts together, then one token of each per step', async () => {
    const before = loaded.loop.stepCount;
    steps.length = 0;
    const runs = [0, 1, 2, 3].map((i) => start(i, prompt(6, i), 10));
    await Promise.all(runs.map((r) => r.done));
    // 1 step for the four prompts (each yields its first token), 9 steps for tokens 2..10.
    expect(loaded.loop.stepCount - before).toBe(10);
    expect(steps.map((s) => s.sequences)).toEqual(Array(10).fill(4));
    expect(steps.map((s) => s.tokens)).toEqual([24, ...Array(9).fill(4)]);
    for (const r of runs) expect(r.tokens).toHaveLength(10);
    // Greedy on the scripted model: the same prompt gives the same tokens whatever its neighbours.
    const alone = start(0, prompt(6, 0), 10);
    await alone.done;
    expect(alone.tokens).toEqual(runs[0]!.tokens);
  });

  it('a request that arrives mid-way joins the next step with its prompt beside the others’ tokens', async () => {
    steps.length = 0;
    let late: Run | undefined;
    const first = start(0, prompt(5, 9), 8, {
      onToken: (n) => {
        if (n === 3) late = start(1, prompt(7, 3), 3);
      },
    });
    await first.done;
    await late!.done;
    // Step 1: prompt 5. Steps 2-3: one token. Step 4: first's token + late's prompt of 7.
    expect(steps.slice(0, 4).map((s) => [s.sequences, s.tokens])).toEqual([
      [1, 5],
      [1, 1],
      [1, 1],
      [2, 8],
    ]);
    expect(steps[4]).toMatchObject({ sequences: 2, tokens: 2 });
    expect(steps.length).toBe(8);
  });

  it('evaluates a prompt longer than the batch in chunks, beside the generating sequences', async () => {
    steps.length = 0;
    let long: Run | undefined;
    const gen = start(0, prompt(3, 21), 6, {
      onToken: (n) => {
        if (n === 1) long = start(1, prompt(150, 22), 2);
      },
    });
    await gen.done;
    await long!.done;
    // Batch 64: the first sequence's token plus 63, 63 and 24 prompt tokens; then both generate together.
    expect(steps.slice(0, 5).map((s) => [s.sequences, s.tokens])).toEqual([
      [1, 3],
      [2, 64],
      [2, 64],
      [2, 25],
      [2, 2],
    ]);
  });

  it('reuses the cached prefix of a sequence and evaluates only the rest', async () => {
    const p = prompt(20, 4);
    const a = start(2, p, 2);
    expect(await a.done).toEqual({ reusedTokens: 0 });
    // The cache now holds p and the first sampled token; a longer prompt sharing p reuses all of p.
    const b = start(2, [...p, ...([5, 6, 7] as Token[])], 2);
    expect(await b.done).toEqual({ reusedTokens: 20 });
    // An identical prompt still evaluates its last token, to get logits.
    const c = start(2, p, 1);
    expect(await c.done).toEqual({ reusedTokens: 19 });
    expect(seqs[2]!.tokens.slice(0, 20)).toEqual(p);
  });

  it('copies a longer cached prefix from another sequence instead of evaluating it again', async () => {
    const shared = prompt(40, 11);
    const a = start(0, shared, 3);
    await a.done;
    // Sequence 1 holds something else; it gets sequence 0's 40 cached prompt tokens and evaluates only its 2 new ones.
    steps.length = 0;
    const b = start(1, [...shared, ...([7, 8] as Token[])], 4);
    expect(await b.done).toEqual({ reusedTokens: 40 });
    expect(steps[0]).toMatchObject({ sequences: 1, tokens: 2 });
    expect(b.tokens).toHaveLength(4);
    expect(seqs[1]!.tokens.slice(0, 42)).toEqual([...shared, 7, 8]);
    // llama.cpp holds the copied cells at the same positions (a gap would have failed the decode above).
    const ctx = (loaded.context as unknown as { _ctx: { getSequenceKvCacheMaxPosition(id: number): number } })._ctx;
    expect(ctx.getSequenceKvCacheMaxPosition(seqs[1]!.id)).toBe(seqs[1]!.tokens.length - 1);
    // A difference below the threshold is evaluated, not copied.
    const c = start(2, [...shared.slice(0, 10), ...([9] as Token[])], 1);
    expect((await c.done).reusedTokens).toBeLessThan(10);
  });

  it('evaluates the prompt itself when the copy cannot be made (no writable temporary folder)', async () => {
    const shared = prompt(30, 17);
    await start(0, shared, 2).done;
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = '/nonexistent/qwen-serve-test';
    try {
      steps.length = 0;
      const b = start(3, [...shared, 5 as Token], 3);
      expect(await b.done).toEqual({ reusedTokens: 0 });
      expect(steps[0]).toMatchObject({ sequences: 1, tokens: 31 });
      expect(b.tokens).toHaveLength(3);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  it('a cancelled request leaves before the next decode; the others go on', async () => {
    let cancel = false;
    const stopped = start(0, prompt(4, 1), 1000, { cancelled: () => cancel, onToken: (n) => (cancel = n >= 3) });
    const other = start(1, prompt(4, 2), 12);
    await stopped.done;
    expect(stopped.tokens).toHaveLength(3);
    await other.done;
    expect(other.tokens).toHaveLength(12);
  });

  it('a request that arrives while the only admitted one is cancelled is still served (the loop does not stop)', async () => {
    let late: Run | undefined;
    const cancelled = start(0, prompt(4, 31), 5, {
      cancelled: () => {
        late ??= start(1, prompt(4, 32), 3);
        return true;
      },
    });
    await cancelled.done;
    expect(cancelled.tokens).toEqual([]);
    await late!.done;
    expect(late!.tokens).toHaveLength(3);
    expect(loaded.loop.size).toBe(0);
  });

  it('a request whose consumer throws fails alone', async () => {
    const failing = start(0, prompt(4, 5), 100, {
      onToken: (n) => {
        if (n === 2) throw new Error('consumer failed');
      },
    });
    const other = start(1, prompt(4, 6), 6);
    await expect(failing.done).rejects.toThrow('consumer failed');
    await other.done;
    expect(other.tokens).toHaveLength(6);
    expect(loaded.loop.size).toBe(0);
  });

  it('follows the scripted model: greedy from its chat prompt yields the script', async () => {
    const tokens = loaded.model.tokenize('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n', true);
    const r = start(3, tokens, TINY_SCRIPT_TOKEN_IDS.length);
    await r.done;
    expect(r.tokens).toEqual(TINY_SCRIPT_TOKEN_IDS);
  });
});

describe('native internals', () => {
  it('node-llama-cpp still has the internals the loop drives (a check that fails on an incompatible upgrade)', () => {
    expect(() => nativeContext(loaded.context)).not.toThrow();
    expect(() => nativeContext({} as never)).toThrow(NativeApiError);
    expect(() => nativeContext({} as never)).toThrow(/LlamaContext\._ctx\.initBatch is missing/);
  });
});

describe('batch loop failures: each costs only the requests it concerns', () => {
  /** The real native context, with failures switched on by the test. */
  const faults = { addToBatch: false, removeOn: -1 };
  let loop: BatchLoop;
  const reported: LoopFault[] = [];
  let failStep = false;

  beforeAll(() => {
    const native = nativeContext(loaded.context);
    const faulty: NativeContext = {
      initBatch: (size) => native.initBatch(size),
      addToBatch: (...args) => {
        if (faults.addToBatch) throw new Error('injected: addToBatch failed');
        return native.addToBatch(...args);
      },
      decodeBatch: () => native.decodeBatch(),
      sampleToken: ((...args: Parameters<NativeContext['sampleToken']>) => native.sampleToken(...args)) as NativeContext['sampleToken'],
      removeTokenCellsFromSequence: (id, start, end) => {
        if (id === faults.removeOn) throw new Error(`injected: removing cells of sequence ${id} failed`);
        return native.removeTokenCellsFromSequence(id, start, end);
      },
      saveSequenceStateToFile: (...args) => native.saveSequenceStateToFile(...args),
      loadSequenceStateFromFile: (...args) => native.loadSequenceStateFromFile(...args),
      ensureDraftContextIsCompatibleForSpeculative: (draft) => native.ensureDraftContextIsCompatibleForSpeculative(draft),
    };
    loop = new BatchLoop(faulty, {
      batchSize: 64,
      contextSize: 256,
      sequences: seqs,
      minSharedPrefix: 16,
      onFault: (f) => reported.push(f),
      onStep: () => {
        if (failStep) throw new Error('injected: the loop itself failed');
      },
    });
  });

  /** Like start(), on the faulty loop. */
  /** `outcome`: 'ok' or the error's message, with a handler attached at once (no rejection goes unhandled). */
  function startOn(seqIndex: number, p: Token[], count: number, onToken?: (n: number) => void): Run & { outcome: Promise<string> } {
    const sampler = loaded.createSampler();
    sampler.applyConfig({ temperature: 0, minP: 0, topK: 0, topP: 1, seed: 1 });
    const tokens: Token[] = [];
    const done = loop
      .run({
        sequence: seqs[seqIndex]!,
        prompt: p,
        sampler,
        cancelled: () => false,
        onToken: (t) => {
          tokens.push(t);
          onToken?.(tokens.length);
          return tokens.length < count;
        },
      })
      .finally(() => sampler.dispose());
    return {
      tokens,
      done,
      outcome: done.then(
        () => 'ok',
        (err: Error) => err.message,
      ),
    };
  }

  it('a step that cannot be assembled fails the requests in it and drops their caches; the loop serves the next ones', async () => {
    reported.length = 0;
    faults.addToBatch = true;
    const a = startOn(0, prompt(5, 41), 4);
    const b = startOn(1, prompt(6, 42), 4);
    expect(await a.outcome).toBe('injected: addToBatch failed');
    expect(await b.outcome).toBe('injected: addToBatch failed');
    expect(reported.map((f) => [f.kind, f.failed])).toEqual([['step', 2]]);
    expect(seqs[0]!.tokens).toEqual([]);
    expect(seqs[1]!.tokens).toEqual([]);
    faults.addToBatch = false;
    const c = startOn(0, prompt(5, 41), 4);
    expect(await c.done).toEqual({ reusedTokens: 0 });
    expect(c.tokens).toHaveLength(4);
    expect(loop.size).toBe(0);
  });

  it('a cache edit that fails fails its own request only; a generating neighbour goes on, and the sequence is cleared before its next use', async () => {
    await startOn(1, prompt(8, 43), 2).done; // sequence 1 now holds a prefix the next prompt does not share
    reported.length = 0;
    faults.removeOn = 1;
    let late: ReturnType<typeof startOn> | undefined;
    const steady = startOn(0, prompt(4, 44), 12, (n) => {
      if (n === 3) late = startOn(1, prompt(8, 45), 3);
    });
    await steady.done;
    expect(await late!.outcome).toBe('injected: removing cells of sequence 1 failed');
    expect(steady.tokens).toHaveLength(12);
    expect(reported.map((f) => [f.kind, f.failed])).toEqual([['edit', 1]]);
    faults.removeOn = -1;
    const next = startOn(1, prompt(8, 45), 3);
    expect(await next.done).toEqual({ reusedTokens: 0 });
    expect(next.tokens).toHaveLength(3);
  });

  it('a fault of the loop itself fails every request in it, without an unhandled rejection; a later request starts it again', async () => {
    reported.length = 0;
    failStep = true;
    const a = startOn(0, prompt(4, 46), 5);
    const b = startOn(2, prompt(4, 47), 5);
    expect(await a.outcome).toBe('injected: the loop itself failed');
    expect(await b.outcome).toBe('injected: the loop itself failed');
    expect(reported.map((f) => [f.kind, f.failed])).toEqual([['loop', 2]]);
    failStep = false;
    const c = startOn(2, prompt(4, 47), 5);
    expect(await c.done).toEqual({ reusedTokens: 0 });
    expect(c.tokens).toHaveLength(5);
  });
});
