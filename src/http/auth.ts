/**
 * API-key auth: `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key: <key>` (Anthropic clients). Keys are compared as SHA-256 digests with timingSafeEqual, against every key without
 * an early exit, so neither the length nor the prefix of a guess changes the response time.
 * /health always stays open (probes carry no key); /metrics is open unless --metrics-auth; the dashboard's
 * page and assets are open (its data, /dashboard/data, is not).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { UnauthorizedError } from '../errors.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export interface AuthOptions {
  keys: string[];
  protectMetrics: boolean;
  /** More paths that need no key (the dashboard page and its static assets, which hold no data). */
  openPaths?: readonly string[];
  /** Called for every refused request (metrics). */
  onRejected: () => void;
}

export function bearerAuth(opts: AuthOptions): RequestHandler {
  const digests = opts.keys.map(digest);
  const open = new Set(['/health', ...(opts.protectMetrics ? [] : ['/metrics']), ...(opts.openPaths ?? [])]);
  return (req, _res, next) => {
    if (digests.length === 0 || open.has(req.path) || req.method === 'OPTIONS') return next();
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
