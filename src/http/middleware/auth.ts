/**
 * API-key auth: `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key: <key>` (Anthropic clients). Keys are compared as SHA-256 digests with timingSafeEqual, against every key without
 * an early exit, so neither the length nor the prefix of a guess changes the response time.
 * /health always stays open (probes carry no key); /metrics is open unless --metrics-auth; the dashboard's
 * page and assets are open (its data, /dashboard/data, is not). Open means the route the request matched
 * (request-context.ts), so `/HEALTH/` is as open as `/health`. OPTIONS needs a key like any method: a
 * CORS preflight, which carries none, has been answered before this runs (cors.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { UnauthorizedError } from '../../errors.js';
import { routeOf } from './request-context.js';
import { ROUTES } from '../route-table.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface AuthOptions {
  keys: string[];
  protectMetrics: boolean;
  /** More route templates that need no key (the dashboard page and its static assets, which hold no data). */
  openRoutes?: readonly string[];
  /** Called for every refused request (metrics). */
  onRejected: () => void;
}

export function bearerAuth(opts: AuthOptions): RequestHandler {
  const digests = opts.keys.map(digest);
  const open = new Set([ROUTES.health.template, ...(opts.protectMetrics ? [] : [ROUTES.metrics.template]), ...(opts.openRoutes ?? [])]);
  return (req, _res, next) => {
    const template = routeOf(req)?.template;
    if (digests.length === 0 || (template !== undefined && open.has(template))) return next();
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')?.[1];
    const key = bearer ?? req.get('x-api-key')?.trim();
    let ok = false;
    if (key) {
      const given = digest(key);
      for (const d of digests) ok = timingSafeEqual(given, d) || ok;
    }
    if (ok) return next();
    opts.onRejected();
    next(
      new UnauthorizedError(
        key ? 'Incorrect API key provided.' : 'Missing API key: send "Authorization: Bearer <key>" or "x-api-key: <key>".',
      ),
    );
  };
}
