/**
 * Speculative decoding is exact: a server drafting by n-gram lookup answers every request exactly as one that
 * does not, token for token — greedy and seeded sampling, penalties, stop strings, logprobs, max_tokens, n,
 * JSON schemas, tool calls, concurrent requests (drafts padded to one length), prefix reuse and a cancelled
 * stream — while decoding in fewer steps. The tiny model repeats a 10-token script, so its answers are
 * copy-heavy: n-gram drafts are long and mostly right.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TINY_SCRIPT_TEXT } from '../src/demo-model/demo-model.js';
import { scrape, value } from './helpers/prom.js';
import { answer, exactnessCases, speculationComparison } from './helpers/speculation.js';
import { postJson, startServer, type TestServer } from './helpers/server.js';

let on: TestServer;
let off: TestServer;

beforeAll(async () => {
  [on, off] = await Promise.all([
    // Every draft on offer is verified: whether drafting pays on the tiny model (its steps cost ~1 ms, mostly the
    // logits of each row) is a matter of timing noise, and these tests need drafts to check that they change nothing.
    startServer(['--speculative', 'ngram', '--sequences', '4', '--draft-policy', 'always']),
    startServer(['--speculative', 'off', '--sequences', '4']),
  ]);
});
afterAll(async () => {
  expect(await on.stop()).toBe(0);
  expect(await off.stop()).toBe(0);
});

const comparison = speculationComparison(() => ({ on, off }), 'tiny');
const { completion, greedyRun } = comparison;

describe('the same answer, in fewer decode steps', () => {
  it('greedy: token for token, with far fewer steps on a repeating answer; the counters add up', async () => {
    const r = await greedyRun(200);
    // Each drafting step verified one sequence, and the first step drafted nothing.
    expect(r.drafts).toBeLessThan(r.steps);
    expect(r.drafted).toBeGreaterThanOrEqual(r.accepted);
  });

  it('a prompt that holds the answer is drafted from its first tokens', async () => {
    const r = await completion({ prompt: TINY_SCRIPT_TEXT.repeat(3), max_tokens: 30, ignore_eos: true });
    expect(r.on).toEqual(r.off);
    expect(r.steps.on).toBeLessThan(r.steps.off);
  });

  it('repeat penalties (their window moves with every token) and logit_bias', async () => {
    const r = await completion({
      max_tokens: 60,
      ignore_eos: true,
      seed: 5,
      temperature: 0.8,
      frequency_penalty: 0.4,
      presence_penalty: 0.3,
      logit_bias: { '0': 2 },
    });
    expect(r.on).toEqual(r.off);
  });

  it('a stop string inside a draft ends the answer at the same place', async () => {
    const stop = TINY_SCRIPT_TEXT.slice(14, 19);
    const r = await completion({ prompt: TINY_SCRIPT_TEXT.repeat(2), max_tokens: 100, ignore_eos: true, stop: [stop] });
    expect(r.on).toEqual(r.off);
    expect((r.on.choices as { finish_reason: string }[])[0]!.finish_reason).toBe('stop');
  });

  it('logprobs with alternatives, and an odd max_tokens that ends inside a draft', async () => {
    const r = await completion({ max_tokens: 37, ignore_eos: true, logprobs: 3 });
    expect(r.on).toEqual(r.off);
    expect(r.on.completion).toBe(37);
  });

  it('a request field that is not a boolean is refused, naming it', async () => {
    const bad = await postJson(`${on.url}/v1/completions`, { prompt: 'x', speculative: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('speculative');
  });

  exactnessCases(() => ({ on, off }), comparison, { draftsConcurrently: true });
});

describe('the KV cache holds only confirmed tokens', () => {
  it('a repeated prompt reuses its cached prefix and answers the same', async () => {
    const body = { prompt: `${TINY_SCRIPT_TEXT} reuse me`, max_tokens: 60, ignore_eos: true, temperature: 0 };
    const first = await postJson(`${on.url}/v1/completions`, body);
    const second = await postJson(`${on.url}/v1/completions`, body);
    expect(answer(second.body)).toEqual(answer(first.body));
    expect(second.body.usage.prompt_tokens_details?.cached_tokens ?? 0).toBeGreaterThan(0);
    const plain = await postJson(`${off.url}/v1/completions`, body);
    expect(answer(second.body)).toEqual(answer(plain.body));
  });
});

describe('a prompt longer than one step indexes (4096 tokens)', () => {
  let long: TestServer;
  beforeAll(async () => {
    long = await startServer(['--speculative', 'ngram', '--context-size', '8192', '--draft-policy', 'always']);
  });
  afterAll(async () => {
    expect(await long.stop()).toBe(0);
  });

  it('is indexed over several steps, then drafted from; the answer is the one without speculation', async () => {
    const body = { prompt: TINY_SCRIPT_TEXT.repeat(130), max_tokens: 80, ignore_eos: true, temperature: 0 };
    const plain = await postJson(`${long.url}/v1/completions`, { ...body, speculative: false });
    const before = value(await scrape(long.url), 'qwen_decode_step_seconds_count', { model: 'tiny' });
    const drafted = await postJson(`${long.url}/v1/completions`, body);
    const steps = value(await scrape(long.url), 'qwen_decode_step_seconds_count', { model: 'tiny' }) - before;
    expect(drafted.body.usage.prompt_tokens).toBeGreaterThan(4096);
    expect(answer(drafted.body)).toEqual(answer(plain.body));
    expect(steps).toBeLessThan(80);
  });
});
