/**
 * The soak client's own account of what it sent and saw, and its comparison with the server's counters.
 * Exact where the client can know (requests, finish reasons, rejections, prompt tokens); bounded where it
 * cannot (tokens generated after a client hung up).
 */
import { ROUTES } from '../../http/route-table.js';
import { value, type Sample } from '../../metrics/exposition-parser.js';

/** The routes the soak client sends requests to, by their name in the route table. */
export const SOAK_ROUTES = { completions: ROUTES.completions, chat: ROUTES.chat, models: ROUTES.models };
export type SoakRoute = keyof typeof SOAK_ROUTES;

const soakRoutes = Object.keys(SOAK_ROUTES) as SoakRoute[];

export class Tally {
  /** Requests sent to each route. */
  requests = Object.fromEntries(soakRoutes.map((r) => [r, 0])) as Record<SoakRoute, number>;
  finished = { stop: 0, length: 0, abort: 0, error: 0 };
  rejected = { queue_full: 0, invalid: 0 };
  promptTokens = 0;
  /** Completion tokens of requests whose usage the client received. */
  completionTokens = 0;
  /** Aborted streams: chunks the client saw before hanging up, and the most they could have generated. */
  abortedChunks = 0;
  abortedMaxTokens = 0;
  /** Anything unexpected: network errors, 5xx, malformed responses. */
  errors: string[] = [];
}

export interface Difference {
  what: string;
  client: string;
  server: string;
}

/** Compares the client's tally with the server's counter deltas between two scrapes. */
export function compare(t: Tally, before: Sample[], after: Sample[]): Difference[] {
  const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
  const diffs: Difference[] = [];
  const exact = (what: string, client: number, server: number) => {
    if (client !== server) diffs.push({ what, client: String(client), server: String(server) });
  };
  for (const name of soakRoutes) {
    // An API route is counted under its template (route-table.ts).
    const { template } = SOAK_ROUTES[name];
    exact(`requests ${template}`, t.requests[name], delta('qwen_inference_request_total', { endpoint: template }));
  }
  for (const [reason, n] of Object.entries(t.finished)) {
    exact(`finish_reason=${reason}`, n, delta('qwen_requests_finished_total', { finish_reason: reason }));
  }
  for (const [reason, n] of Object.entries(t.rejected)) {
    exact(`rejected ${reason}`, n, delta('qwen_requests_rejected_total', { reason }));
  }
  exact('prompt tokens', t.promptTokens, delta('qwen_prompt_tokens_total'));
  const generated = delta('qwen_generation_tokens_total');
  const low = t.completionTokens + t.abortedChunks;
  const high = t.completionTokens + t.abortedMaxTokens;
  if (generated < low || generated > high) {
    diffs.push({ what: 'generation tokens', client: `${low}..${high}`, server: String(generated) });
  }
  exact('generation tokens vs per-request histogram', generated, delta('qwen_request_generation_tokens_sum'));
  exact('requests still running', 0, value(after, 'qwen_requests_running'));
  exact('connections still open', 0, value(after, 'qwen_active_connections'));
  return diffs;
}
