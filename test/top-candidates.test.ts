/**
 * The patched addon's top-k sampling (sampleToken's 5th argument) against the stock full path, on the same
 * decoded row of the tiny model: the same sampled token, exactly the first k candidates of the full answer
 * (ids and probabilities), and the same probability for the sampled token, for greedy and temperature
 * sampling with top_p / top_k, with and without a grammar. Each comparison uses two fresh samplers with the
 * same configuration and seed, so their random states match. Then the same through the batch loop and the
 * OpenAI logprob entries. Skipped where the addon is the stock one (test/addon-patch.test.ts says why).
 */
import { LlamaGrammarEvaluationState, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BatchLoop, type Sampled } from '../workers/batch-loop.js';
import { LogprobReader } from '../workers/logprobs.js';
import { loadModel, type LoadedModel } from '../workers/model.js';
import { nativeContext, nativeGrammarState, type NativeContext, type SamplerConfig } from '../workers/native.js';
import type { TokenLogprob } from '../src/shared/protocol.js';

const K = 5;
let row: number;

/** The tiny model, loaded before the tests are collected: whether they run depends on the addon it got. */
async function load(): Promise<LoadedModel> {
  const model = await loadModel({
    modelPath: inject('tinyModel'),
    modelId: 'tiny',
    channel: 'test',
    timeBuckets: [],
    faults: false,
    threads: 1,
    sequences: 2,
    contextSize: 128,
    batchSize: 32,
    gpu: 'off',
    gpuLayers: 0,
    grammarCacheSize: 0,
  });
  if (model.kind !== 'generate') throw new Error('the tiny model is a text-generation model');
  return model;
}
const loaded = await load();
const native: NativeContext = nativeContext(loaded.context);
const patched = loaded.topLogprobs === 'patched-top-k';
if (!patched) console.warn('\n*** top-candidates tests SKIPPED: the stock addon is installed (see test/addon-patch.test.ts) ***\n');

afterAll(async () => {
  await loaded.context.dispose();
  await loaded.model.dispose();
});

/** Relative float tolerance: the two paths sum the same terms in a different order. */
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(Math.abs(a), Math.abs(b)) + 1e-12;

/**
 * `top` is the first k of `full` (both [token, p, …], most likely first): the same probabilities rank by rank,
 * and each listed token at its own probability in the full answer (tokens of equal probability may swap).
 */
function expectTopOf(full: number[], top: number[], k: number): void {
  expect(top.length).toBe(2 * Math.min(k, full.length / 2));
  const byToken = new Map<number, number>();
  for (let i = 0; i < full.length; i += 2) byToken.set(full[i]!, full[i + 1]!);
  for (let i = 0; i < top.length; i += 2) {
    expect(close(top[i + 1]!, full[i + 1]!), `rank ${i / 2}: ${top[i + 1]} vs ${full[i + 1]}`).toBe(true);
    expect(close(top[i + 1]!, byToken.get(top[i]!)!), `token ${top[i]}: ${top[i + 1]} vs ${byToken.get(top[i]!)}`).toBe(true);
  }
}

/** Spreads the tiny model's next-token distribution over ~40 tokens, so the top k are a real choice. */
const SPREAD: Pick<SamplerConfig, 'tokenBiasKeys' | 'tokenBiasValues'> = {
  tokenBiasKeys: Uint32Array.from({ length: 40 }, (_, i) => 66 + i),
  tokenBiasValues: Float32Array.from({ length: 40 }, (_, i) => 18 + (i % 13) * 0.5),
};

const CONFIGS: Record<string, SamplerConfig> = {
  greedy: { temperature: 0, minP: 0, topK: 0, topP: 1, seed: 1, ...SPREAD },
  'temperature + top_p': { temperature: 1.3, minP: 0, topK: 0, topP: 0.9, seed: 7, ...SPREAD },
  'temperature + top_k': { temperature: 0.8, minP: 0, topK: 12, topP: 1, seed: 11, ...SPREAD },
};

/** Letters a-m first, then any letters: a grammar that allows a part of the spread and rules out the rest. */
const GBNF = 'root ::= [a-m] [a-z]*';

/** Two samplers with the same configuration (and, with a grammar, each its own evaluation state). */
async function samplerPair(config: SamplerConfig, grammar: boolean) {
  const llamaGrammar = grammar ? await loaded.model.llama.createGrammar({ grammar: GBNF }) : undefined;
  return [0, 1].map(() => {
    const s = loaded.createSampler();
    const state = llamaGrammar && new LlamaGrammarEvaluationState({ model: loaded.model, grammar: llamaGrammar });
    s.applyConfig({ ...config, ...(state && { grammarEvaluationState: nativeGrammarState(state) }) });
    return s;
  });
}

describe.skipIf(!patched)('top-k sampling in the patched addon', () => {
  beforeAll(async () => {
    // One decoded row: a prompt on sequence 0, logits for its last token.
    native.initBatch(8);
    row = native.addToBatch(0, 0, Uint32Array.of(10, 20, 30, 40, 50, 60), Uint32Array.of(5))[0]!;
    await native.decodeBatch();
  });

  for (const grammar of [false, true]) {
    for (const [name, config] of Object.entries(CONFIGS)) {
      it(`returns the full path's top ${K} and sampled token: ${name}${grammar ? ', with a grammar' : ''}`, async () => {
        const [full, top] = await samplerPair(config, grammar);
        try {
          // Several draws from the same row: each advances both samplers' RNG (and grammar) the same way.
          for (let draw = 0; draw < 4; draw++) {
            const [token, all] = await native.sampleToken(row, full!, true, false);
            const [topToken, pairs, chosen] = await native.sampleToken(row, top!, true, true, K);
            expect(topToken).toBe(token);
            expectTopOf(all!, pairs!, K);
            const p = all!.findIndex((t, i) => i % 2 === 0 && t === token);
            expect(close(chosen!, all![p + 1]!), `sampled token ${token}: ${chosen} vs ${all![p + 1]}`).toBe(true);
            if (grammar) expect(loaded.model.detokenize([token as Token])).toMatch(draw === 0 ? /^[a-m]/ : /^[a-z]/);
            // Listed alternatives that a grammar or top-k / top-p ruled out are at probability 0.
            if (name !== 'greedy') expect(pairs!.filter((_, i) => i % 2 === 1 && pairs![i]! > 0).length).toBeGreaterThan(1);
          }
        } finally {
          full!.dispose();
          top!.dispose();
        }
      });
    }
  }

  it("gives the sampled token's probability alone (logprobs without top_logprobs) as the stock path does", async () => {
    for (const config of Object.values(CONFIGS)) {
      const [stock, patched] = await samplerPair(config, false);
      const [token, , p] = await native.sampleToken(row, stock!, false, true);
      const [topToken, pairs, chosen] = await native.sampleToken(row, patched!, false, true, 0);
      expect(topToken).toBe(token);
      expect(pairs).toBeUndefined();
      expect(close(chosen!, p!)).toBe(true);
      stock!.dispose();
      patched!.dispose();
    }
  });

  it("gives the sampled token's probability when it is not among the k", async () => {
    const [full, top] = await samplerPair(CONFIGS['temperature + top_p']!, false);
    let outside = 0;
    for (let draw = 0; draw < 8; draw++) {
      const [token, all] = await native.sampleToken(row, full!, true, false);
      const [topToken, pairs, chosen] = await native.sampleToken(row, top!, true, true, 1);
      expect(topToken).toBe(token);
      if (pairs![0] === token) continue;
      outside++;
      const p = all!.findIndex((t, i) => i % 2 === 0 && t === token);
      expect(close(chosen!, all![p + 1]!), `sampled token ${token}: ${chosen} vs ${all![p + 1]}`).toBe(true);
    }
    // The top token holds ~12 % here: most draws land outside the top 1 (the seed makes this deterministic).
    expect(outside).toBeGreaterThan(0);
    full!.dispose();
    top!.dispose();
  });

  it('returns fewer pairs when fewer candidates are left (top_k below k)', async () => {
    const [full, top] = await samplerPair({ ...CONFIGS['temperature + top_k']!, topK: 3 }, false);
    const [, all] = await native.sampleToken(row, full!, true, false);
    const [, pairs] = await native.sampleToken(row, top!, true, true, 20);
    expect(all!.length).toBe(6);
    expectTopOf(all!, pairs!, 20);
    full!.dispose();
    top!.dispose();
  });

  it('gives the same logprob entries through the batch loop with and without top-k', async () => {
    const prompt = [10, 20, 30, 40, 50, 60] as Token[];
    const generate = async (topCandidates: boolean): Promise<TokenLogprob[]> => {
      const sequence = { id: 1, tokens: [] as Token[] };
      const loop = new BatchLoop(native, { batchSize: 32, contextSize: 128, sequences: [sequence], minSharedPrefix: 16, topCandidates });
      const reader = new LogprobReader(loaded.model, K);
      const sampler = loaded.createSampler();
      sampler.applyConfig(CONFIGS['temperature + top_p']!);
      const entries: TokenLogprob[] = [];
      await loop.run({
        sequence,
        prompt,
        sampler,
        probabilities: reader.needs,
        cancelled: () => false,
        onToken: (token: Token, sampled: Sampled) => {
          entries.push(reader.entry(token, sampled));
          return entries.length < 8;
        },
      });
      sampler.dispose();
      native.removeTokenCellsFromSequence(1, 0, -1);
      return entries;
    };
    const stock = await generate(false);
    const patched = await generate(true);
    expect(patched.map((e) => e.token)).toEqual(stock.map((e) => e.token));
    patched.forEach((e, i) => {
      const s = stock[i]!;
      expect(close(e.logprob, s.logprob), `token ${i}: ${e.logprob} vs ${s.logprob}`).toBe(true);
      expect(e.top.length).toBe(s.top.length);
      e.top.forEach((alt, j) => expect(close(alt.logprob, s.top[j]!.logprob), `token ${i} alternative ${j}`).toBe(true));
    });
    expect(patched.some((e) => e.top.length > 1)).toBe(true);
  });
});
