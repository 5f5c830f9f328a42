/**
 * The noisy-neighbour benchmark (`npm run bench -- --noisy all`): what one heavy client costs everyone
 * else. Normal traffic (streamed completions at a fixed concurrency) runs alone and beside a client that
 * loops one heavy request kind, alternately, round after round; the report gives normal traffic's time to
 * first token and inter-token latency (p50 / p99) in both phases and their ratios, and what the heavy
 * client got (statuses, requests). A server that bounds and isolates each request's cost keeps the ratios
 * near 1.
 */
import { randomUUID } from 'node:crypto';
import { AGENT_TOOLS } from './agent-tools.js';
import { ROUTES } from '../../http/route-table.js';
import { streamCompletion, type Endpoint } from './http-client.js';
import { percentiles, ratio, type Percentiles, type RequestSample } from './stats.js';
import { runClients, type Workload } from './workload.js';

/** A heavy request: sent in a loop by the noisy client; resolves with its HTTP status. Each names the benchmarked model. */
type Heavy = (ep: Endpoint) => Promise<number>;

const post = async (ep: Endpoint, path: string, body: unknown): Promise<number> => {
  const res = await fetch(`${ep.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(ep.apiKey ? { authorization: `Bearer ${ep.apiKey}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
};

const chat = (ep: Endpoint, body: object) =>
  post(ep, ROUTES.chat.path, { model: ep.model, messages: [{ role: 'user', content: 'Hello' }], ...body });

/** JSON nested `depth` levels, as text (building it as an object would overflow this client's stack). */
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

/** The heavy kinds of issue 19's hostile client, each near the default limits. */
export const HEAVY: Record<string, { what: string; send: Heavy }> = {
  control: {
    what: 'one more ordinary chat of 64 tokens (the cost of any second client, for comparison)',
    send: (ep) => chat(ep, { max_tokens: 64, ignore_eos: true }),
  },
  'tokenize-specials': {
    what: '/tokenize of 80k <|im_start|> (960 KB)',
    send: (ep) => post(ep, ROUTES.tokenize.path, { model: ep.model, content: '<|im_start|>'.repeat(80_000) }),
  },
  'tokenize-pieces': {
    what: '/tokenize with_pieces of 900 KB of text',
    send: (ep) =>
      post(ep, ROUTES.tokenize.path, {
        model: ep.model,
        content: 'The quick brown fox jumps over the lazy dog. '.repeat(20_000),
        with_pieces: true,
      }),
  },
  'long-prompt': {
    what: 'chat with 900 KB of <tool_call> text (refused: longer than the context)',
    send: (ep) => chat(ep, { messages: [{ role: 'user', content: '<tool_call>'.repeat(80_000) }], max_tokens: 8 }),
  },
  'enum-schema': {
    what: 'response_format with a fresh 5000-value enum each time (composed, never cached)',
    send: (ep) => {
      const tag = randomUUID().slice(0, 8);
      const values = Array.from({ length: 5000 }, (_, i) => `${tag}-${i}`);
      const schema = { type: 'object', properties: { v: { enum: values } }, required: ['v'] };
      return chat(ep, { max_tokens: 24, response_format: { type: 'json_schema', json_schema: { name: 'pick', schema } } });
    },
  },
  'agent-tools': {
    what: 'a 12-tool agent set, renamed each time (composed, never cached), tool_choice required',
    send: (ep) => {
      const tag = randomUUID().slice(0, 8);
      const tools = AGENT_TOOLS.map((t) => ({ ...t, function: { ...t.function, name: `${t.function.name}_${tag}` } }));
      return chat(ep, { max_tokens: 32, tools, tool_choice: 'required' });
    },
  },
  'top-logprobs': {
    what: 'chat with top_logprobs 20, 64 tokens',
    send: (ep) => chat(ep, { max_tokens: 64, ignore_eos: true, logprobs: true, top_logprobs: 20 }),
  },
  'big-answer': {
    what: 'n 16 × top_logprobs 20 × max_tokens 1900 (refused: over the logprobs budget)',
    send: (ep) => chat(ep, { n: 16, max_tokens: 1900, logprobs: true, top_logprobs: 20 }),
  },
  'deep-json': {
    what: 'tool-call arguments nested 100k levels (refused: over the depth limit)',
    send: (ep) =>
      post(
        ep,
        ROUTES.chat.path,
        `{"model":${JSON.stringify(ep.model)},"max_tokens":4,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":${JSON.stringify(nested(100_000))}}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}`,
      ),
  },
};

interface PhaseResult {
  requests: number;
  errors: number;
  ttftMs: Percentiles;
  itlMs: Percentiles;
}

export interface NoisyRow {
  kind: string;
  what: string;
  alone: PhaseResult;
  beside: PhaseResult;
  /** beside ÷ alone. */
  ratios: { ttftP50: number; ttftP99: number; itlP50: number; itlP99: number };
  /** What the heavy client got: status → count. */
  heavyStatuses: Record<string, number>;
}

function phase(samples: RequestSample[]): PhaseResult {
  const ok = samples.filter((s) => !s.error);
  return {
    requests: samples.length,
    errors: samples.length - ok.length,
    ttftMs: percentiles(ok.map((s) => s.ttftMs)),
    itlMs: percentiles(ok.flatMap((s) => s.itlMs)),
  };
}

/** Normal traffic alone and beside the heavy client, alternating which goes first, `rounds` times. */
export async function runNoisy(
  ep: Endpoint,
  kinds: string[],
  w: Workload,
  concurrency: number,
  rounds: number,
  progress: (text: string) => void,
): Promise<NoisyRow[]> {
  const rows: NoisyRow[] = [];
  const normal = () => runClients(concurrency, w.requests(concurrency), () => streamCompletion(ep, w));
  for (const kind of kinds) {
    const heavy = HEAVY[kind]!;
    const alone: RequestSample[] = [];
    const beside: RequestSample[] = [];
    const statuses: Record<string, number> = {};
    for (let round = 0; round < rounds; round++) {
      for (const withHeavy of round % 2 === 0 ? [false, true] : [true, false]) {
        progress(`noisy ${kind}: round ${round + 1}/${rounds}, ${withHeavy ? 'beside the heavy client' : 'alone'}`);
        if (!withHeavy) {
          alone.push(...(await normal()));
          continue;
        }
        let stop = false;
        const noisy = (async () => {
          while (!stop) {
            const status = await heavy.send(ep).catch(() => 0);
            statuses[status] = (statuses[status] ?? 0) + 1;
          }
        })();
        beside.push(...(await normal()));
        stop = true;
        await noisy;
      }
    }
    const a = phase(alone);
    const b = phase(beside);
    rows.push({
      kind,
      what: heavy.what,
      alone: a,
      beside: b,
      ratios: {
        ttftP50: ratio(b.ttftMs.p50, a.ttftMs.p50),
        ttftP99: ratio(b.ttftMs.p99, a.ttftMs.p99),
        itlP50: ratio(b.itlMs.p50, a.itlMs.p50),
        itlP99: ratio(b.itlMs.p99, a.itlMs.p99),
      },
      heavyStatuses: statuses,
    });
  }
  return rows;
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '–');
const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '–');

export function noisyMarkdown(rows: NoisyRow[], concurrency: number, w: Workload): string {
  const lines = [
    `Normal traffic: ${concurrency} streamed completions at a time, ${w.promptTokens}-token prompt, ${w.genTokens} tokens each; ` +
      'TTFT and inter-token latency in ms, alone → beside one client looping the heavy request; ratios are beside ÷ alone.',
    '',
    '| heavy client | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 | TTFT p50 × | TTFT p99 × | ITL p50 × | ITL p99 × | heavy requests (status: count) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const statuses = Object.entries(r.heavyStatuses)
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ');
    lines.push(
      `| ${r.kind}: ${r.what} | ${ms(r.alone.ttftMs.p50)} → ${ms(r.beside.ttftMs.p50)} | ${ms(r.alone.ttftMs.p99)} → ${ms(r.beside.ttftMs.p99)} | ` +
        `${ms(r.alone.itlMs.p50)} → ${ms(r.beside.itlMs.p50)} | ${ms(r.alone.itlMs.p99)} → ${ms(r.beside.itlMs.p99)} | ` +
        `${x(r.ratios.ttftP50)} | ${x(r.ratios.ttftP99)} | ${x(r.ratios.itlP50)} | ${x(r.ratios.itlP99)} | ${statuses} |`,
    );
  }
  const errors = rows.reduce((n, r) => n + r.alone.errors + r.beside.errors, 0);
  if (errors > 0) lines.push('', `${errors} normal requests failed.`);
  return lines.join('\n') + '\n';
}
