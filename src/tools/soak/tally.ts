/**
 * The soak client's own account of what it sent and saw, and its comparison with the server's counters.
 * Exact where the client can know (requests, finish reasons, rejections, prompt tokens); bounded where it
 * cannot (tokens generated after a client hung up).
 *
 * On a server with several models the per-model counters are read for the soaked model only. The tutorial's
 * request counter and the connection gauge are server-wide (no model label), so the soak must be the server's
 * only client while it runs, as it always had to be.
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

/** Compares the client's tally with the server's counter deltas between two scrapes, `model`'s series for the per-model metrics. */
export function compare(t: Tally, before: Sample[], after: Sample[], model: string): Difference[] {
  const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
  const ofModel = { model };
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
    exact(`finish_reason=${reason}`, n, delta('qwen_requests_finished_total', { ...ofModel, finish_reason: reason }));
  }
  exact('rejected queue_full', t.rejected.queue_full, delta('qwen_requests_rejected_total', { ...ofModel, reason: 'queue_full' }));
  // Over every model: a body the server cannot parse (one of the bad requests) names no model it could count under.
  exact('rejected invalid', t.rejected.invalid, delta('qwen_requests_rejected_total', { reason: 'invalid' }));
  exact('prompt tokens', t.promptTokens, delta('qwen_prompt_tokens_total', ofModel));
  const generated = delta('qwen_generation_tokens_total', ofModel);
  const low = t.completionTokens + t.abortedChunks;
  const high = t.completionTokens + t.abortedMaxTokens;
  if (generated < low || generated > high) {
    diffs.push({ what: 'generation tokens', client: `${low}..${high}`, server: String(generated) });
  }
  exact('generation tokens vs per-request histogram', generated, delta('qwen_request_generation_tokens_sum', ofModel));
  exact('requests still running', 0, value(after, 'qwen_requests_running', ofModel));
  exact('connections still open', 0, value(after, 'qwen_active_connections'));
  return diffs;
}
