/**
 * Speculative decoding with a draft model (--speculative draft --draft-model) is exact: a server whose drafts come from
 * a small model answers every request exactly as one that does not draft — greedy and seeded sampling, a JSON schema
 * and a tool call, n, concurrent requests and a cancelled stream — in fewer decode steps, and its speculation
 * counters move. The main model is the tiny scripted model made heavier (24 layers, a wider FFN: the same script at
 * ~4 ms a token on one CPU thread), the draft model the plain tiny one (~0.2 ms a pass): it drafts the script, so its
 * greedy drafts are confirmed, and its passes cost far less than the steps they save.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TINY_SCRIPT_TEXT, writeDemoModel } from '../src/demo-model/demo-model.js';
import { exactnessCases, speculationComparison } from './helpers/speculation.js';
import { startServer, type TestServer } from './helpers/server.js';

let draft: TestServer;
let off: TestServer;

beforeAll(async () => {
  const heavy = path.join(inject('modelsDir'), 'tiny-heavy.gguf');
  await writeDemoModel({ size: 'tiny', outPath: heavy, heavier: { layers: 24, ffn: 8192 } });
  const model = ['--model', `main=${heavy}`, '--sequences', '4'];
  [draft, off] = await Promise.all([
    // Every step drafts (see speculative.test.ts): these tests check what drafts change, not when they pay.
    startServer([...model, '--speculative', 'draft', '--draft-model', inject('tinyModel'), '--draft-policy', 'always']),
    startServer([...model, '--speculative', 'off']),
  ]);
});
afterAll(async () => {
  expect(await draft.stop()).toBe(0);
  expect(await off.stop()).toBe(0);
});

const comparison = speculationComparison(() => ({ on: draft, off }), 'main');
const { completion, greedyRun } = comparison;

describe('drafts from a draft model: the same answer, in fewer decode steps', () => {
  it('greedy: token for token, every draft confirmed; the counters add up', async () => {
    const r = await greedyRun(200);
    // The draft model answers as the main model does here: every drafted token is confirmed.
    expect(r.drafted).toBe(r.accepted);
  });

  it('a prompt longer than the draft batch is caught up in chunks', async () => {
    const r = await completion({ prompt: `${TINY_SCRIPT_TEXT} `.repeat(20), max_tokens: 60, ignore_eos: true });
    expect(r.on.prompt).toBeGreaterThan(128);
    expect(r.on).toEqual(r.off);
    expect(r.steps.on).toBeLessThan(r.steps.off);
  });

  exactnessCases(() => ({ on: draft, off }), comparison, { draftsConcurrently: false });
});
