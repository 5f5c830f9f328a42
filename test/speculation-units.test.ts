/**
 * The pieces of speculative decoding that need no model: n-gram lookup (the most recent earlier occurrence of the
 * longest suffix, a loop continued past the history's end, hash collisions caught), the acceptance estimate (it
 * falls with rejections and drifts back while idle), learned step costs, and the choice of one draft length per
 * step (long at one sequence with good acceptance, none when the batch is full or drafts are poor; with a draft
 * model, none when its passes cost what they save).
 */
import type { Token } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import {
  Acceptance,
  chooseDraftLength,
  CPU_STEP_COST,
  longestDraft,
  StepCosts,
  type DraftLengthOptions,
} from '../workers/speculation/draft-length.js';
import { NgramIndex } from '../workers/speculation/ngram-index.js';

const index = (tokens: number[], min = 2, max = 4) => {
  const i = new NgramIndex(min, max);
  i.pushAll(tokens as Token[]);
  return i;
};

describe('NgramIndex', () => {
  it('historyOnly keeps the history (a draft model reads it) and drafts nothing, even from a loop', () => {
    const i = NgramIndex.historyOnly();
    i.pushAll([1, 2, 3, 1, 2, 3, 1, 2] as Token[]);
    expect(i.tokens).toEqual([1, 2, 3, 1, 2, 3, 1, 2]);
    expect(i.draft(8)).toEqual([]);
    expect(i.lastMatch).toBe(0);
  });

  it('drafts what followed the last earlier occurrence of the longest matching suffix', () => {
    // "7 8 9" occurred twice before; the later one was followed by 4, the earlier by 1.
    expect(index([7, 8, 9, 1, 2, 5, 7, 8, 9, 4, 6, 5, 7, 8, 9]).draft(3)).toEqual([4, 6, 5]);
    // Only the 2-gram "8 9" matches (3 and 4 tokens do not): what followed its last occurrence.
    expect(index([1, 8, 9, 3, 3, 2, 8, 9]).draft(2)).toEqual([3, 3]);
  });

  it('prefers the longer n-gram over a more recent shorter one', () => {
    // "5 6 7" → 1 (earlier), "6 7" alone → 2 (later): the 3-gram wins.
    expect(index([5, 6, 7, 1, 0, 6, 7, 2, 9, 5, 6, 7]).draft(1)).toEqual([1]);
  });

  it('continues a repetition past the end of the history', () => {
    expect(index([1, 2, 3, 1, 2, 3]).draft(7)).toEqual([1, 2, 3, 1, 2, 3, 1]);
    expect(index([4, 4, 4]).draft(5)).toEqual([4, 4, 4, 4, 4]);
  });

  it('drafts nothing without a match, for an empty room, or with a history shorter than the smallest n-gram', () => {
    expect(index([1, 2, 3, 4, 5]).draft(4)).toEqual([]);
    expect(index([1, 2, 1, 2]).draft(0)).toEqual([]);
    expect(index([1]).draft(3)).toEqual([]);
  });

  it('learns each pushed token: a new occurrence becomes the most recent one', () => {
    const i = index([1, 2, 3, 9]);
    i.push(1 as Token);
    i.push(2 as Token);
    expect(i.draft(2)).toEqual([3, 9]);
    i.pushAll([3, 5, 1, 2] as Token[]);
    expect(i.draft(2)).toEqual([3, 5]);
    expect(i.length).toBe(10);
  });

  it('says how long its match is: a quoted passage matches far back, a coincidence only its n-gram', () => {
    const quoted = index([...[10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 99, ...[10, 11, 12, 13, 14, 15, 16, 17]]);
    expect(quoted.draft(2)).toEqual([18, 19]);
    expect(quoted.lastMatch).toBe(8);
    const coincidence = index([1, 2, 3, 4, 7, 8, 5, 6, 9, 7, 8]);
    expect(coincidence.draft(1)).toEqual([5]);
    expect(coincidence.lastMatch).toBe(2);
    coincidence.draft(0);
    expect(coincidence.lastMatch).toBe(0);
  });

  it('stays cheap per token on a long history', () => {
    const i = new NgramIndex(2, 4);
    for (let t = 0; t < 100_000; t++) i.push(((t * 7919) % 5003) as Token);
    // Every 5003 tokens the sequence repeats: the continuation is known.
    expect(i.draft(3)).toEqual([(100_000 * 7919) % 5003, (100_001 * 7919) % 5003, (100_002 * 7919) % 5003]);
  });
});

describe('Acceptance', () => {
  it('falls after rejections, rises after confirmations, and drifts back to its prior while idle', () => {
    const a = new Acceptance(0.75);
    expect(a.alpha).toBeCloseTo(0.75);
    a.update(8, 0);
    a.update(8, 0);
    expect(a.alpha).toBeLessThan(0.2);
    for (let i = 0; i < 100; i++) a.idle();
    expect(a.alpha).toBeGreaterThan(0.6);
    a.update(8, 8);
    a.update(8, 8);
    expect(a.alpha).toBeGreaterThan(0.85);
    a.update(0, 0); // nothing offered: nothing learned
    expect(a.alpha).toBeGreaterThan(0.85);
  });
});

describe('StepCosts', () => {
  it('prices an unmeasured size by the prior times the measured cost of one token, then by what it measured', () => {
    const c = new StepCosts((n) => (n + 1) / 2, 0.5);
    c.observe(1, 0.03);
    expect(c.cost(8)).toBeCloseTo(0.135);
    c.observe(8, 0.1);
    c.observe(8, 0.2);
    expect(c.cost(8)).toBeCloseTo(0.15);
  });

  it('without a step of one, prices from the nearest smaller size measured (the smallest, if none is smaller)', () => {
    const c = new StepCosts((n) => n / 2);
    expect(c.cost(4)).toBeCloseTo(2); // nothing measured: the prior, in seconds
    c.observe(4, 0.04);
    c.observe(8, 0.1);
    expect(c.cost(12)).toBeCloseTo(0.15);
    expect(c.cost(6)).toBeCloseTo(0.06);
    expect(c.cost(2)).toBeCloseTo(0.02);
  });
});

describe('StepCosts: one slow step does not stop drafting for good', () => {
  const o: DraftLengthOptions = { draftMin: 2, draftMax: 16, batchSize: 512, fillerAlpha: 0.05, margin: 0.1 };
  const eight = Array.from({ length: 8 }, () => ({ offered: 16, alpha: 0.95 }));

  it('a step counts as at most twice what was expected of it', () => {
    const c = new StepCosts(CPU_STEP_COST);
    c.observe(8, 0.07);
    c.observe(24, 5); // a step the scheduler held up: 35× the plain step
    expect(c.cost(24)).toBeCloseTo(2 * 0.07 * (CPU_STEP_COST(24) / CPU_STEP_COST(8)));
  });

  it('an over-priced size drifts back down during plain steps until it is drafted again, and stays where it is measured', () => {
    const c = new StepCosts(CPU_STEP_COST);
    c.observe(8, 0.07);
    // Measured dear, repeatedly: drafting stops at 8 sequences.
    for (let i = 0; i < 20; i++) c.observe(24, 0.3);
    const choose = () => chooseDraftLength(eight, (n) => c.cost(n), o);
    expect(choose()).toBe(0);
    let plainSteps = 0;
    while (choose() === 0 && plainSteps < 500) {
      c.observe(8, 0.07);
      c.idle(8);
      plainSteps++;
    }
    expect(plainSteps).toBeGreaterThan(10);
    expect(plainSteps).toBeLessThan(100);
    // It drafts again at some K; if that size is as dear as before, measuring it puts its price back: not that K.
    const k = choose();
    for (let i = 0; i < 20; i++) c.observe(8 * (k + 1), 0.3 * (CPU_STEP_COST(8 * (k + 1)) / CPU_STEP_COST(24)));
    expect(c.cost(8 * (k + 1))).toBeGreaterThan(0.25);
    expect(choose()).not.toBe(k);
    // Sizes at or below the plain step are left alone.
    c.observe(4, 0.01);
    c.idle(8);
    expect(c.cost(4)).toBeCloseTo(0.01);
  });
});

describe('longestDraft (--draft-policy always)', () => {
  const o: DraftLengthOptions = { draftMin: 2, draftMax: 16, batchSize: 64, fillerAlpha: 0.05, margin: 0.1 };
  it('the longest offer, within --draft-max and the batch; nothing under --draft-min', () => {
    expect(longestDraft([3, 9, 0], o)).toBe(9);
    expect(longestDraft([40], o)).toBe(16);
    // 8 sequences in a batch of 64: at most 7 drafts each besides the sampled token.
    expect(longestDraft([16, 0, 0, 0, 0, 0, 0, 0], o)).toBe(7);
    expect(longestDraft([1, 1], o)).toBe(0);
    expect(longestDraft([0], o)).toBe(0);
  });
});

describe('chooseDraftLength', () => {
  const o: DraftLengthOptions = { draftMin: 2, draftMax: 16, batchSize: 512, fillerAlpha: 0.05, margin: 0.1 };
  /** The CPU's shape: a step of n tokens costs 1 + n / 3 steps of one (about 2× at 4 tokens). */
  const cpu = (n: number) => 1 + (n - 1) / 3;

  it('drafts long for one sequence whose drafts are mostly right', () => {
    const k = chooseDraftLength([{ offered: 16, alpha: 0.95 }], cpu, o);
    expect(k).toBeGreaterThanOrEqual(5);
    expect(k).toBeLessThanOrEqual(16);
  });

  it('drafts nothing when no draft is offered, acceptance is poor, or a step costs as much as its tokens', () => {
    expect(chooseDraftLength([{ offered: 0, alpha: 0.95 }], cpu, o)).toBe(0);
    expect(chooseDraftLength([{ offered: 16, alpha: 0.2 }], cpu, o)).toBe(0);
    // A full batch: each extra token costs a full token's time.
    const linear = (n: number) => n;
    expect(
      chooseDraftLength(
        Array.from({ length: 8 }, () => ({ offered: 16, alpha: 0.8 })),
        linear,
        o,
      ),
    ).toBe(0);
  });

  it('never drafts beyond what is offered, draft-max, or the batch', () => {
    expect(chooseDraftLength([{ offered: 3, alpha: 0.99 }], cpu, o)).toBeLessThanOrEqual(3);
    expect(chooseDraftLength([{ offered: 40, alpha: 0.99 }], cpu, { ...o, draftMax: 5 })).toBeLessThanOrEqual(5);
    expect(chooseDraftLength([{ offered: 16, alpha: 0.99 }], cpu, { ...o, batchSize: 4 })).toBeLessThanOrEqual(3);
    expect(chooseDraftLength([{ offered: 16, alpha: 0.99 }], cpu, { ...o, draftMin: 17 })).toBe(0);
  });

  it("adds a draft model's passes to the step: drafts that cost what they save are not made", () => {
    const seqs = [{ offered: 16, alpha: 0.95 }];
    // One pass per draft token, each a tenth of a step of one: worth it.
    expect(chooseDraftLength(seqs, cpu, o, (k) => k * 0.1)).toBeGreaterThanOrEqual(2);
    // As costly as the main model's steps: never.
    expect(chooseDraftLength(seqs, cpu, o, (k) => k * cpu(1))).toBe(0);
    // Cheap passes do not make a full batch worth drafting (each extra token costs a full token's time).
    const full = Array.from({ length: 8 }, () => ({ offered: 16, alpha: 0.8 }));
    expect(
      chooseDraftLength(
        full,
        (n) => n,
        o,
        (k) => k * 0.001,
      ),
    ).toBe(0);
    // Nor poor acceptance.
    expect(chooseDraftLength([{ offered: 16, alpha: 0.2 }], cpu, o, (k) => k * 0.001)).toBe(0);
  });

  it('pads sequences without a draft: their filler counts as nearly worthless', () => {
    const one = chooseDraftLength([{ offered: 12, alpha: 0.95 }], cpu, o);
    const withIdle = chooseDraftLength(
      [{ offered: 12, alpha: 0.95 }, ...Array.from({ length: 3 }, () => ({ offered: 0, alpha: 0.75 }))],
      cpu,
      o,
    );
    expect(withIdle).toBeLessThan(one);
  });
});
