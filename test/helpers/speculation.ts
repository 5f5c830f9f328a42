/**
 * Comparing a speculating server with one that does not: the same request to both, the parts of the answers that
 * must be equal, the decode steps each took, and the speculation counters of the first.
 */
import { expect, it } from 'vitest';
import { scrape, value } from './prom.js';
import { postJson, waitIdle, type TestServer } from './server.js';

/** What must not change with speculation: the choices and the token counts (tool call ids are random in every answer). */
export function answer(body: Record<string, unknown>) {
  const usage = body.usage as { prompt_tokens: number; completion_tokens: number };
  const choices: unknown = JSON.parse(JSON.stringify(body.choices).replace(/"call_[A-Za-z0-9_-]{24}"/g, '"call_id"'));
  return { choices, prompt: usage.prompt_tokens, completion: usage.completion_tokens };
}

/** `servers()` gives the speculating server and the plain one (started in beforeAll); `model` is their model's id. */
export function speculationComparison(servers: () => { on: TestServer; off: TestServer }, model: string) {
  const steps = async (server: TestServer) => value(await scrape(server.url), 'qwen_decode_step_seconds_count', { model });

  /** The speculation counters of the speculating server. */
  async function speculation() {
    const samples = await scrape(servers().on.url);
    const read = (name: string) => value(samples, `qwen_spec_decode_${name}_total`, { model });
    return { drafts: read('drafts'), drafted: read('draft_tokens'), accepted: read('accepted_tokens') };
  }

  /** The same request to both servers: both answers, and the decode steps each took for it. */
  async function both(route: string, body: object) {
    const { on, off } = servers();
    await Promise.all([waitIdle(on.url), waitIdle(off.url)]);
    const before = await Promise.all([steps(on), steps(off)]);
    const [a, b] = await Promise.all([postJson(`${on.url}${route}`, body), postJson(`${off.url}${route}`, body)]);
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect(b.status, JSON.stringify(b.body)).toBe(200);
    const after = await Promise.all([steps(on), steps(off)]);
    return { on: answer(a.body), off: answer(b.body), steps: { on: after[0] - before[0], off: after[1] - before[1] } };
  }

  const completion = (body: object) => both('/v1/completions', { prompt: 'hello', temperature: 0, ...body });

  /**
   * A greedy answer of `tokens` tokens from both servers: the same answer, one step per token without speculation,
   * under half as many with it, and every accepted draft token a step saved (the first step evaluates the prompt).
   * Returns the speculation counters' increase and the speculating server's steps, for each mode's own identities.
   */
  async function greedyRun(tokens: number) {
    const before = await speculation();
    const r = await completion({ max_tokens: tokens, ignore_eos: true });
    expect(r.on).toEqual(r.off);
    expect(r.off.completion).toBe(tokens);
    expect(r.steps.off).toBe(tokens);
    expect(r.steps.on).toBeLessThan(tokens / 2);
    const after = await speculation();
    const counted = {
      drafts: after.drafts - before.drafts,
      drafted: after.drafted - before.drafted,
      accepted: after.accepted - before.accepted,
    };
    expect(counted.accepted).toBe(tokens - r.steps.on);
    expect(counted.drafts).toBeGreaterThan(0);
    return { ...counted, steps: r.steps.on };
  }
  return { speculation, both, completion, greedyRun };
}

/**
 * The cases every speculation mode must answer exactly as plain decoding, registered in the caller's describe:
 * seeded sampling, a JSON schema and a forced tool call, n, concurrent requests, a request that turns speculation
 * off, and a stream cancelled mid-draft. `draftsConcurrently`: the mode is known to draft at concurrency 4.
 */
export function exactnessCases(
  servers: () => { on: TestServer; off: TestServer },
  cmp: ReturnType<typeof speculationComparison>,
  opts: { draftsConcurrently: boolean },
): void {
  const { speculation, both, completion } = cmp;

  it('seeded sampling: the same tokens at every temperature, with top_p and top_k', async () => {
    for (const [seed, temperature] of [
      [1, 0.7],
      [2, 1.5],
      [3, 1.9],
    ] as const) {
      const r = await completion({ max_tokens: 60, ignore_eos: true, seed, temperature, top_p: 0.9, top_k: 40 });
      expect(r.on, `seed ${seed}, temperature ${temperature}`).toEqual(r.off);
    }
  });

  it('a JSON schema and a forced tool call (grammars advance only with confirmed tokens)', async () => {
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

  it('concurrent requests (drafts padded to one length per step) answer as they would alone', async () => {
    const { on, off } = servers();
    const bodies = [1, 2, 3, 4].map((seed) => ({
      prompt: `hello ${seed}`,
      max_tokens: 80,
      ignore_eos: true,
      seed,
      temperature: seed === 1 ? 0 : 1,
    }));
    const before = await speculation();
    const together = await Promise.all(bodies.map((b) => postJson(`${on.url}/v1/completions`, b)));
    if (opts.draftsConcurrently) expect((await speculation()).accepted).toBeGreaterThan(before.accepted);
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
    const { on } = servers();
    const controller = new AbortController();
    const res = await fetch(`${on.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hello', max_tokens: 2000, ignore_eos: true, temperature: 0, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    controller.abort();
    await waitIdle(on.url);
    const r = await completion({ prompt: 'hello again', max_tokens: 60, ignore_eos: true });
    expect(r.on).toEqual(r.off);
  });
}
