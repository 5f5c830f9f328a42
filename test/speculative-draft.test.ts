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
import { answer, speculationComparison } from './helpers/speculation.js';
import { postJson, startServer, waitIdle, type TestServer } from './helpers/server.js';

let draft: TestServer;
let off: TestServer;

beforeAll(async () => {
  const heavy = path.join(inject('modelsDir'), 'tiny-heavy.gguf');
  await writeDemoModel({ size: 'tiny', outPath: heavy, heavier: { layers: 24, ffn: 8192 } });
  const model = ['--model', `main=${heavy}`, '--sequences', '4'];
  [draft, off] = await Promise.all([
    startServer([...model, '--speculative', 'draft', '--draft-model', inject('tinyModel')]),
    startServer([...model, '--speculative', 'off']),
  ]);
});
afterAll(async () => {
  expect(await draft.stop()).toBe(0);
  expect(await off.stop()).toBe(0);
});

const { speculation, both, completion } = speculationComparison(() => ({ on: draft, off }), 'main');

describe('drafts from a draft model: the same answer, in fewer decode steps', () => {
  it('greedy: token for token, every draft confirmed; the counters add up', async () => {
    const before = await speculation();
    const r = await completion({ max_tokens: 200, ignore_eos: true });
    expect(r.on).toEqual(r.off);
    expect(r.off.completion).toBe(200);
    expect(r.steps.off).toBe(200);
    expect(r.steps.on).toBeLessThan(100);
    const after = await speculation();
    // Each step yields its sampled token and the drafts it confirmed; the first evaluates the prompt.
    expect(after.accepted - before.accepted).toBe(200 - r.steps.on);
    expect(after.drafted - before.drafted).toBe(after.accepted - before.accepted);
    expect(after.drafts - before.drafts).toBeGreaterThan(0);
  });

  it('a prompt longer than the draft batch is caught up in chunks', async () => {
    const r = await completion({ prompt: `${TINY_SCRIPT_TEXT} `.repeat(20), max_tokens: 60, ignore_eos: true });
    expect(r.on.prompt).toBeGreaterThan(128);
    expect(r.on).toEqual(r.off);
    expect(r.steps.on).toBeLessThan(r.steps.off);
  });

  it('seeded sampling: the same tokens at every temperature, with top_p and top_k', async () => {
    for (const [seed, temperature] of [
      [1, 0.7],
      [2, 1.5],
    ] as const) {
      const r = await completion({ max_tokens: 60, ignore_eos: true, seed, temperature, top_p: 0.9, top_k: 40 });
      expect(r.on, `seed ${seed}, temperature ${temperature}`).toEqual(r.off);
    }
  });

  it('a JSON schema and a forced tool call', async () => {
    const messages = [{ role: 'user', content: 'What time is it?' }];
    const schema = {
      type: 'json_schema',
      json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'string', maxLength: 30 } }, required: ['a'] } },
    };
    const json = await both('/v1/chat/completions', { messages, response_format: schema, max_tokens: 80, temperature: 0 });
    expect(json.on).toEqual(json.off);
    const tools = [
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } },
    ];
    const call = await both('/v1/chat/completions', { messages, tools, tool_choice: 'required', max_tokens: 80, temperature: 0 });
    expect(call.on).toEqual(call.off);
  });

  it('n = 3 seeded choices, each its own sequence', async () => {
    const r = await completion({ max_tokens: 40, ignore_eos: true, n: 3, seed: 11, temperature: 1.2 });
    expect(r.on).toEqual(r.off);
  });

  it('concurrent requests answer as they would alone', async () => {
    const bodies = [1, 2, 3, 4].map((seed) => ({
      prompt: `hello ${seed}`,
      max_tokens: 80,
      ignore_eos: true,
      seed,
      temperature: seed === 1 ? 0 : 1,
    }));
    const together = await Promise.all(bodies.map((b) => postJson(`${draft.url}/v1/completions`, b)));
    for (const [i, b] of bodies.entries()) {
      const alone = await postJson(`${off.url}/v1/completions`, b);
      expect(answer(together[i]!.body), `request ${i}`).toEqual(answer(alone.body));
    }
  });

  it('a request can turn speculation off: one step per token, nothing drafted', async () => {
    const before = await speculation();
    const r = await completion({ max_tokens: 50, ignore_eos: true, speculative: false });
    expect(r.on).toEqual(r.off);
    expect(r.steps.on).toBe(50);
    expect(await speculation()).toEqual(before);
  });

  it('a stream cancelled mid-draft leaves a sequence that answers the next request exactly', async () => {
    const controller = new AbortController();
    const res = await fetch(`${draft.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hello', max_tokens: 2000, ignore_eos: true, temperature: 0, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    controller.abort();
    await waitIdle(draft.url);
    const r = await completion({ prompt: 'hello again', max_tokens: 60, ignore_eos: true });
    expect(r.on).toEqual(r.off);
  });
});
