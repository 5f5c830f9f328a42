/**
 * Speculation with a draft model (workers/speculation/draft-model.ts) in the batch loop, on the real engine in this
 * process: the tiny model drafts for itself (greedy, every draft is confirmed) through a second context, for a main
 * context whose decodes are slowed as a larger model's would be, so that drafting pays. A draft model that fails —
 * its decode, its sampling, its cache edits — costs no request: the answers are those of plain decoding, no loop
 * fault is reported, and once it works again it drafts again. At load, a draft model as costly as the main one is
 * never asked (its passes cost what they save), and one whose vocabulary differs fails the load, naming
 * --draft-model.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LlamaContext, Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { WorkerInit } from '../src/shared/protocol.js';
import { BatchLoop, type LoopFault, type StepStats } from '../workers/batch-loop.js';
import { loadModel, type LoadedModel, type ModelHooks } from '../workers/model.js';
import { nativeContext, type NativeContext } from '../workers/native.js';
import { DraftModel } from '../workers/speculation/draft-model.js';
import { tinyWorkerInit } from './helpers/worker-init.js';

const SEQUENCES = 4;
const init: WorkerInit = tinyWorkerInit('', SEQUENCES);

let loaded: LoadedModel;
let draftContext: LlamaContext;
let seqs: Awaited<ReturnType<LoadedModel['sequences']['acquire']>>[];
/** Which call of the draft context fails; counts the calls made while it does. */
const faults = { decode: false, sample: false, remove: false, calls: 0 };
let faulty: NativeContext;
/** The main context, each decode 10 ms longer: a draft pass (~0.2 ms) is then far cheaper than the step it saves. */
let slowMain: NativeContext;

async function load(speculation?: WorkerInit['speculation'], hooks?: ModelHooks): Promise<LoadedModel> {
  const model = await loadModel({ ...init, modelPath: inject('tinyModel'), speculation }, hooks);
  if (model.kind !== 'generate') throw new Error('the tiny model is a text-generation model');
  return model;
}

/** `native` with some of its calls replaced. */
function wrap(native: NativeContext, replaced: Partial<NativeContext>): NativeContext {
  return {
    initBatch: (size) => native.initBatch(size),
    addToBatch: (...args) => native.addToBatch(...args),
    decodeBatch: () => native.decodeBatch(),
    sampleToken: ((...args: Parameters<NativeContext['sampleToken']>) => native.sampleToken(...args)) as NativeContext['sampleToken'],
    removeTokenCellsFromSequence: (...args) => native.removeTokenCellsFromSequence(...args),
    saveSequenceStateToFile: (...args) => native.saveSequenceStateToFile(...args),
    loadSequenceStateFromFile: (...args) => native.loadSequenceStateFromFile(...args),
    ensureDraftContextIsCompatibleForSpeculative: (draft) => native.ensureDraftContextIsCompatibleForSpeculative(draft),
    ...replaced,
  };
}

beforeAll(async () => {
  loaded = await load();
  seqs = await Promise.all(Array.from({ length: SEQUENCES }, () => loaded.sequences.acquire()));
  const main = nativeContext(loaded.context);
  slowMain = wrap(main, { decodeBatch: () => new Promise((resolve) => setTimeout(resolve, 10)).then(() => main.decodeBatch()) });
  draftContext = await loaded.model.createContext({ contextSize: 256, sequences: SEQUENCES, threads: 1, batchSize: 16 });
  const native = nativeContext(draftContext);
  const fail = (what: 'decode' | 'sample' | 'remove') => {
    if (!faults[what]) return;
    faults.calls++;
    throw new Error(`injected: the draft model's ${what} failed`);
  };
  faulty = wrap(native, {
    decodeBatch: () => (fail('decode'), native.decodeBatch()),
    sampleToken: ((...args: Parameters<NativeContext['sampleToken']>) => {
      fail('sample');
      return native.sampleToken(...args);
    }) as NativeContext['sampleToken'],
    removeTokenCellsFromSequence: (id, start, end) => (fail('remove'), native.removeTokenCellsFromSequence(id, start, end)),
  });
});

afterAll(async () => {
  await draftContext?.dispose();
  await loaded?.context.dispose();
  await loaded?.model.dispose();
});

/** A loop over the slowed main context whose drafts come from the tiny model's second context. */
function draftingLoop(steps: StepStats[], reported: LoopFault[]): BatchLoop {
  const vocabulary = loaded.vocabularySize;
  const samplers = Array.from({ length: SEQUENCES }, () => {
    const s = loaded.createSampler();
    s.applyConfig({ temperature: 0, minP: 0, topK: 0, topP: 1, seed: 0 });
    return s;
  });
  const drafter = new DraftModel(faulty, samplers, {
    batchSize: 16,
    draftVocabulary: vocabulary,
    mainVocabulary: vocabulary,
    relativeCost: 0,
  });
  return new BatchLoop(slowMain, {
    batchSize: 64,
    contextSize: 256,
    sequences: seqs,
    minSharedPrefix: 16,
    onStep: (s) => steps.push(s),
    onFault: (f) => reported.push(f),
    speculation: { draftMin: 2, draftMax: 8, policy: 'adaptive', ngramMin: 2, ngramMax: 4, draftModel: drafter },
  });
}

const prompt = (n: number, salt: number): Token[] => Array.from({ length: n }, (_, i) => (100 + ((i * 7 + salt) % 50)) as Token);

/** Generates `count` tokens on sequence `seq` (seeded: temperature 0.8 when `seed` is given, else greedy). */
async function generate(loop: BatchLoop, seq: number, p: Token[], count: number, o: { seed?: number; onToken?: (n: number) => void } = {}) {
  const sampler = loaded.createSampler();
  sampler.applyConfig({ temperature: o.seed === undefined ? 0 : 0.8, minP: 0, topK: 0, topP: 1, seed: o.seed ?? 1 });
  const tokens: Token[] = [];
  try {
    await loop.run({
      sequence: seqs[seq]!,
      prompt: p,
      sampler,
      cancelled: () => false,
      draftRoom: () => count - tokens.length - 1,
      onToken: (t) => {
        tokens.push(t);
        o.onToken?.(tokens.length);
        return tokens.length < count;
      },
    });
  } finally {
    sampler.dispose();
  }
  // The request ends inside its last step, which reports its stats right after.
  await new Promise((resolve) => setImmediate(resolve));
  return tokens;
}

const total = (steps: StepStats[], key: 'drafted' | 'accepted') => steps.reduce((n, s) => n + s[key], 0);

describe('a draft model in the batch loop', () => {
  it('drafts greedily for the generating sequences, and the answers are those of plain decoding', async () => {
    const steps: StepStats[] = [];
    const reported: LoopFault[] = [];
    const loop = draftingLoop(steps, reported);
    expect(await generate(loop, 0, prompt(6, 1), 40)).toEqual(await generate(loaded.loop, 0, prompt(6, 1), 40));
    // Every draft of a model drafting for itself is confirmed: the steps yield their drafts and one token more.
    expect(total(steps, 'accepted')).toBe(total(steps, 'drafted'));
    expect(steps.length).toBe(40 - total(steps, 'accepted'));
    expect(steps.length).toBeLessThan(20);
    // A prompt longer than the draft batch (16) is caught up in chunks, one per step, before it drafts; seeded
    // sampling at temperature 0.8 takes the same tokens.
    steps.length = 0;
    const long = prompt(40, 2);
    expect(await generate(loop, 1, long, 40, { seed: 7 })).toEqual(await generate(loaded.loop, 1, long, 40, { seed: 7 }));
    expect(total(steps, 'accepted')).toBeGreaterThan(0);
    // Two sequences together, each drafted for.
    steps.length = 0;
    const together = await Promise.all([generate(loop, 0, prompt(6, 8), 40), generate(loop, 1, prompt(7, 9), 40, { seed: 5 })]);
    expect(together).toEqual([
      await generate(loaded.loop, 0, prompt(6, 8), 40),
      await generate(loaded.loop, 1, prompt(7, 9), 40, { seed: 5 }),
    ]);
    expect(steps.some((s) => s.drafts === 2)).toBe(true);
    expect(reported).toEqual([]);
  });

  for (const what of ['decode', 'sample', 'remove'] as const) {
    it(`a draft model whose ${what} fails costs no request; once it works again it drafts again`, async () => {
      const steps: StepStats[] = [];
      const reported: LoopFault[] = [];
      const loop = draftingLoop(steps, reported);
      faults[what] = true;
      faults.calls = 0;
      expect(await generate(loop, 0, prompt(5, 3), 30)).toEqual(await generate(loaded.loop, 0, prompt(5, 3), 30));
      expect(await generate(loop, 2, prompt(9, 4), 30, { seed: 3 })).toEqual(await generate(loaded.loop, 2, prompt(9, 4), 30, { seed: 3 }));
      expect(faults.calls).toBeGreaterThan(0);
      expect(total(steps, 'drafted')).toBe(0);
      expect(reported).toEqual([]);
      // The failure ends mid-request: the tokens are the plain ones throughout, and it drafts again.
      const recovered = await generate(loop, 0, prompt(5, 5), 40, { onToken: (n) => n === 10 && (faults[what] = false) });
      expect(recovered).toEqual(await generate(loaded.loop, 0, prompt(5, 5), 40));
      expect(total(steps, 'accepted')).toBeGreaterThan(0);
      expect(reported).toEqual([]);
    });
  }
});

describe('loading a draft model', () => {
  it('loads beside the model; one as costly as the model never drafts (its passes cost what they save)', async () => {
    const steps: StepStats[] = [];
    const self = await load(
      { draftMin: 2, draftMax: 8, policy: 'adaptive', draftModelPath: inject('tinyModel') },
      { onStep: (s) => steps.push(s) },
    );
    try {
      expect(self.draft).toBeDefined();
      const seq = await self.sequences.acquire();
      const sampler = self.createSampler();
      sampler.applyConfig({ temperature: 0, minP: 0, topK: 0, topP: 1, seed: 1 });
      let n = 0;
      await self.loop.run({
        sequence: seq,
        prompt: prompt(5, 6),
        sampler,
        cancelled: () => false,
        draftRoom: () => 60 - n - 1,
        onToken: () => ++n < 60,
      });
      sampler.dispose();
      await new Promise((resolve) => setImmediate(resolve));
      expect(n).toBe(60);
      expect(steps).toHaveLength(60);
      expect(total(steps, 'drafted')).toBe(0);
    } finally {
      await self.draft?.context.dispose();
      await self.draft?.model.dispose();
      await self.context.dispose();
      await self.model.dispose();
    }
  });

  it('fails, naming --draft-model, when the vocabularies differ', async () => {
    // The tiny model with one token's text changed (same length: the file stays valid).
    const bytes = fs.readFileSync(inject('tinyModel'));
    const at = bytes.indexOf('<|fim_prefix|>');
    expect(at).toBeGreaterThan(0);
    bytes.write('<|fim_prefiX|>', at);
    const other = path.join(inject('modelsDir'), 'tiny-other-vocabulary.gguf');
    fs.writeFileSync(other, bytes);
    await expect(load({ draftMin: 2, draftMax: 8, policy: 'adaptive', draftModelPath: other })).rejects.toThrow(
      /^--draft-model .*tiny-other-vocabulary\.gguf: it cannot draft for this model \(.*token \d+ content differs/,
    );
  });
});
