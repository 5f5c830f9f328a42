/**
 * One soak client's requests: streamed and plain completions and chats, streams the client abandons
 * mid-way, and deliberately bad requests. Each outcome goes into the Tally.
 */
import { SOAK_ROUTES, type SoakRoute, type Tally } from './tally.js';
import { readSse, SseParser } from '../shared/sse.js';

export interface TrafficOptions {
  url: string;
  apiKey?: string;
  model: string;
  maxTokens: number;
  /** Tokens asked for by streams that the client abandons (long enough to still be running). */
  disconnectTokens: number;
  disconnectRate: number;
  badRate: number;
  /** Prompt tokens of ABORT_PROMPT, measured once before the run. */
  abortPromptTokens: number;
  random: () => number;
}

export const ABORT_PROMPT = 'Write a very long story.';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}

function headers(o: TrafficOptions): Record<string, string> {
  return { 'content-type': 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) };
}

function record(t: Tally, usage: Usage | undefined, finish: string | null | undefined, what: string): void {
  if (!usage || !finish) {
    t.errors.push(`${what}: response without usage or finish_reason`);
    return;
  }
  t.promptTokens += usage.prompt_tokens;
  t.completionTokens += usage.completion_tokens;
  if (finish === 'stop' || finish === 'length') t.finished[finish]++;
  else t.errors.push(`${what}: unexpected finish_reason ${finish}`);
}

async function post(o: TrafficOptions, t: Tally, route: SoakRoute, body: unknown, signal?: AbortSignal): Promise<Response | undefined> {
  t.requests[route]++;
  const endpoint = SOAK_ROUTES[route].template;
  const res = await fetch(`${o.url}${endpoint}`, { method: 'POST', headers: headers(o), body: JSON.stringify(body), signal });
  if (res.status === 429) {
    t.rejected.queue_full++;
    await res.arrayBuffer();
    return undefined;
  }
  if (res.status !== 200) {
    t.errors.push(`${endpoint}: unexpected status ${res.status}: ${(await res.text()).slice(0, 200)}`);
    return undefined;
  }
  return res;
}

async function good(o: TrafficOptions, t: Tally): Promise<void> {
  const chat = o.random() < 0.5;
  const stream = o.random() < 0.5;
  const route: SoakRoute = chat ? 'chat' : 'completions';
  const endpoint = SOAK_ROUTES[route].template;
  const maxTokens = 1 + Math.floor(o.random() * o.maxTokens);
  const input = chat
    ? { messages: [{ role: 'user', content: `Tell me about ${Math.floor(o.random() * 1000)}` }] }
    : { prompt: `Count to ${Math.floor(o.random() * 1000)}:` };
  const body = {
    model: o.model,
    ...input,
    max_tokens: maxTokens,
    temperature: o.random() < 0.5 ? 0 : 0.8,
    ignore_eos: o.random() < 0.3,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  };
  const res = await post(o, t, route, body);
  if (!res) return;
  if (!stream) {
    const json = (await res.json()) as { usage?: Usage; choices?: { finish_reason: string }[] };
    record(t, json.usage, json.choices?.[0]?.finish_reason, endpoint);
    return;
  }
  const events = await readSse(res);
  if (events.at(-1) !== '[DONE]') t.errors.push(`${endpoint}: stream did not end with [DONE]`);
  const chunks = events.filter(
    (e): e is { usage?: Usage; choices: { finish_reason: string | null }[]; error?: unknown } => typeof e === 'object',
  );
  const failed = chunks.find((c) => c.error);
  if (failed) {
    t.errors.push(`${endpoint}: error chunk ${JSON.stringify(failed.error)}`);
    return;
  }
  const finish = chunks.map((c) => c.choices[0]?.finish_reason).find((f) => f);
  record(t, chunks.at(-1)?.usage, finish, endpoint);
}

async function disconnect(o: TrafficOptions, t: Tally): Promise<void> {
  const ac = new AbortController();
  const body = { model: o.model, prompt: ABORT_PROMPT, max_tokens: o.disconnectTokens, ignore_eos: true, stream: true };
  const res = await post(o, t, 'completions', body, ac.signal);
  if (!res) return;
  t.promptTokens += o.abortPromptTokens;
  t.finished.abort++;
  t.abortedMaxTokens += o.disconnectTokens;
  const wanted = 1 + Math.floor(o.random() * 3);
  let seen = 0;
  const sse = new SseParser();
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    seen += sse.push(part).filter((e) => typeof e === 'object').length;
    if (seen >= wanted) break;
  }
  if (seen < wanted) {
    t.errors.push('an abandoned stream ended before the client hung up: raise --disconnect-tokens');
    return;
  }
  t.abortedChunks += seen;
  ac.abort();
}

/** Bad bodies; those that parse name the soaked model, so a server with several models refuses them for what is wrong. */
const BAD_BODIES: [SoakRoute, (model: string) => string][] = [
  ['completions', () => '{"prompt": "unterminated'],
  ['completions', (model) => JSON.stringify({ model, prompt: 42 })],
  ['completions', (model) => JSON.stringify({ model, prompt: 'x', n: 17 })],
  ['chat', (model) => JSON.stringify({ model, messages: 'not a list' })],
  ['chat', (model) => JSON.stringify({ model, messages: [{ role: 'wizard', content: 'x' }] })],
  ['completions', (model) => JSON.stringify({ model, prompt: 'x', max_tokens: -5 })],
];

async function bad(o: TrafficOptions, t: Tally): Promise<void> {
  const [route, make] = BAD_BODIES[Math.floor(o.random() * BAD_BODIES.length)]!;
  const body = make(o.model);
  t.requests[route]++;
  const res = await fetch(`${o.url}${SOAK_ROUTES[route].template}`, { method: 'POST', headers: headers(o), body });
  const json = (await res.json().catch(() => undefined)) as { error?: { type?: string } } | undefined;
  if (res.status !== 400 || json?.error?.type !== 'invalid_request_error') {
    t.errors.push(`bad request ${body}: got ${res.status} ${JSON.stringify(json)}`);
    return;
  }
  t.rejected.invalid++;
}

/** One request of a random kind. */
export async function oneRequest(o: TrafficOptions, t: Tally): Promise<void> {
  const r = o.random();
  try {
    if (r < o.badRate) await bad(o, t);
    else if (r < o.badRate + o.disconnectRate) await disconnect(o, t);
    else await good(o, t);
  } catch (err) {
    if ((err as Error).name !== 'AbortError') t.errors.push(`network: ${(err as Error).message}`);
  }
}
