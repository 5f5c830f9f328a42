/**
 * CORS (--cors-origin): response headers for the allowed origins, and answers to browsers' preflights.
 * Only a real preflight is answered here without a key (browsers send none): an OPTIONS request from an
 * allowed origin, with Access-Control-Request-Method, on a known route. Any other OPTIONS request is an
 * ordinary one: it needs the key, then gets a 405 (method-check.ts).
 */
import cors from 'cors';
import type { Request, RequestHandler } from 'express';
import { allowedMethods } from '../route-table.js';
import { routeOf } from './request-context.js';

/** How long a browser may cache a preflight's answer (seconds). */
const PREFLIGHT_MAX_AGE = 600;

export function corsHandler(origins: string[] | '*'): RequestHandler {
  const origin = origins === '*' ? '*' : origins;
  const headers = cors({ origin });
  const preflight = cors((req, done) =>
    done(null, { origin, maxAge: PREFLIGHT_MAX_AGE, methods: allowedMethods(routeOf(req as Request)!) }),
  );
  const allowed = (o: string | undefined) => o !== undefined && (origins === '*' || origins.includes(o));
  return (req, res, next) => {
    if (req.method !== 'OPTIONS') return headers(req, res, next);
    const isPreflight = allowed(req.get('origin')) && req.get('access-control-request-method') !== undefined && routeOf(req) !== undefined;
    if (isPreflight) return preflight(req, res, next);
    next();
  };
}
