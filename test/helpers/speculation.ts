/**
 * Comparing a speculating server with one that does not: the same request to both, the parts of the answers that
 * must be equal, the decode steps each took, and the speculation counters of the first.
 */
import { expect } from 'vitest';
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
  return { speculation, both, completion };
}
