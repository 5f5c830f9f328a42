/**
 * Every route the servers answer, in one table: its template (what metrics and messages name), the express
 * path the routers register, and its methods. `matchRoute` finds a request's route the way express routes
 * it (case-insensitive, one optional trailing slash, the query string ignored), so the `endpoint` label,
 * the 405s and the open paths of auth agree with what express runs, and no label ever carries a raw path.
 */
import type { ApiEndpoint } from '../metrics/definitions.js';

export type Method = 'GET' | 'POST';

/** Whose API a route belongs to: it decides the shape of the route's errors (app.ts maps it). */
export type Dialect = 'openai' | 'responses' | 'anthropic' | 'server';

export interface Route {
  /** `/v1/models/{id}`: the label and the name in messages. */
  readonly template: string;
  /** `/v1/models/:id`: what the express router registers. */
  readonly path: string;
  readonly methods: readonly Method[];
  /** Counted as an API request under this label; undefined for probes, scrapes and the dashboard. */
  readonly label: ApiEndpoint | undefined;
  readonly dialect: Dialect;
}

/** A route from its template: `{name}` is one path segment (express's `:name`). */
function route(method: Method, template: string, label: ApiEndpoint | undefined, dialect: Dialect): Route {
  return { template, path: template.replace(/\{(\w+)\}/g, ':$1'), methods: [method], label, dialect };
}

/** An API route, counted under its template. */
const api = (method: Method, template: ApiEndpoint, dialect: Dialect) => route(method, template, template, dialect);
const uncounted = (method: Method, template: string) => route(method, template, undefined, 'server');

export const ROUTES = {
  completions: api('POST', '/v1/completions', 'openai'),
  chat: api('POST', '/v1/chat/completions', 'openai'),
  responses: api('POST', '/v1/responses', 'responses'),
  messages: api('POST', '/v1/messages', 'anthropic'),
  countTokens: api('POST', '/v1/messages/count_tokens', 'anthropic'),
  embeddings: api('POST', '/v1/embeddings', 'openai'),
  models: api('GET', '/v1/models', 'openai'),
  model: api('GET', '/v1/models/{id}', 'openai'),
  tokenize: api('POST', '/tokenize', 'server'),
  detokenize: api('POST', '/detokenize', 'server'),
  // Not API requests: scrapes and probes would drown the request rate, and so would the dashboard (every
  // open tab polls /dashboard/data every 2 s: its own polling would show as traffic in the very request
  // rate it plots, and in the tutorial's rate(qwen_inference_request_total)).
  health: uncounted('GET', '/health'),
  metrics: uncounted('GET', '/metrics'),
  dashboard: uncounted('GET', '/dashboard'),
  dashboardData: uncounted('GET', '/dashboard/data'),
  dashboardAsset: uncounted('GET', '/dashboard/assets/{name}'),
} as const satisfies Record<string, Route>;

export const DASHBOARD_ROUTES: readonly Route[] = [ROUTES.dashboard, ROUTES.dashboardData, ROUTES.dashboardAsset];

/** Every route of the API port with the dashboard on. */
export const API_ROUTES: readonly Route[] = Object.values(ROUTES);

/** Every (method, endpoint label) an API request can be counted under, but `other`. */
export const COUNTED_ROUTES: readonly { method: Method; endpoint: ApiEndpoint }[] = API_ROUTES.flatMap((r) =>
  r.label === undefined ? [] : r.methods.map((method) => ({ method, endpoint: r.label! })),
);

/** The routes the metrics port serves. */
export const METRICS_PORT_ROUTES: readonly Route[] = [ROUTES.metrics];

/** The methods a route answers: HEAD wherever GET is (express answers HEAD with the GET handler). */
export function allowedMethods(r: Route): string[] {
  return r.methods.includes('GET') ? [...r.methods, 'HEAD'] : [...r.methods];
}

export type RouteMatcher = (path: string) => Route | undefined;

/**
 * Matches a raw request path (req.path: no query, not percent-decoded, as express matches it) against
 * `routes`: case-insensitive, one trailing slash allowed, a `{name}` segment is one non-empty segment.
 */
export function routeMatcher(routes: readonly Route[]): RouteMatcher {
  const compiled = routes.map((r) => ({
    route: r,
    regexp: new RegExp(
      `^${r.template
        .split(/\{\w+\}/)
        .map(escape)
        .join('[^/]+')}/?$`,
      'i',
    ),
  }));
  return (path) => compiled.find((c) => c.regexp.test(path))?.route;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The dialect of a path no route matched, from the routes it extends: `/v1/messages/batches` is under
 * Anthropic's `/v1/messages`, so its 404 comes in Anthropic's shape (clients of a dialect parse its errors).
 * Case-insensitive, as routes match; the longest such route wins; undefined when the path extends none.
 */
export function dialectUnder(routes: readonly Route[]): (path: string) => Dialect | undefined {
  const bases = routes
    .filter((r) => r.dialect !== 'server' && !r.template.includes('{'))
    .map((r) => ({ prefix: `${r.template.toLowerCase()}/`, dialect: r.dialect }))
    .sort((a, b) => b.prefix.length - a.prefix.length);
  return (path) => {
    const lower = path.toLowerCase();
    return bases.find((b) => lower.startsWith(b.prefix))?.dialect;
  };
}
