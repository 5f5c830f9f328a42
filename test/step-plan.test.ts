/**
 * The step planner alone: every generating sequence in every step, prompt chunks fill the rest.
 */
import { describe, expect, it } from 'vitest';
import { planStep } from '../workers/step-plan.js';

const pending = (...n: number[]) => n.map((p) => ({ pending: p }));

describe('planStep', () => {
  it('puts every generating sequence in the step, one token each, with logits', () => {
    expect(planStep(pending(1, 1, 1, 1), 512)).toEqual([0, 1, 2, 3].map((index) => ({ index, count: 1, logits: true })));
  });

  it('adds whole prompts after the generating sequences, logits on their last token', () => {
    expect(planStep(pending(30, 1, 5, 1), 512)).toEqual([
      { index: 1, count: 1, logits: true },
      { index: 3, count: 1, logits: true },
      { index: 0, count: 30, logits: true },
      { index: 2, count: 5, logits: true },
    ]);
  });

  it('splits a prompt at the batch size; the chunk has no logits and later prompts wait', () => {
    expect(planStep(pending(1, 600, 40, 1), 512)).toEqual([
      { index: 0, count: 1, logits: true },
      { index: 3, count: 1, logits: true },
      { index: 1, count: 510, logits: false },
    ]);
    // The rest of that prompt next step, then the next prompt in the room left.
    expect(planStep(pending(1, 90, 40, 1), 512)).toEqual([
      { index: 0, count: 1, logits: true },
      { index: 3, count: 1, logits: true },
      { index: 1, count: 90, logits: true },
      { index: 2, count: 40, logits: true },
    ]);
  });

  it('skips sequences with nothing pending and never exceeds the batch', () => {
    expect(planStep(pending(0, 1, 0), 4)).toEqual([{ index: 1, count: 1, logits: true }]);
    const plan = planStep(pending(1, 1, 1, 9, 9), 4);
    expect(plan.reduce((n, i) => n + i.count, 0)).toBe(4);
    expect(plan).toEqual([
      { index: 0, count: 1, logits: true },
      { index: 1, count: 1, logits: true },
      { index: 2, count: 1, logits: true },
      { index: 3, count: 1, logits: false },
    ]);
    expect(planStep(pending(), 8)).toEqual([]);
  });
});
