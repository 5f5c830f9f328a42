/**
 * A known route asked with a method it does not serve is a 405 with `Allow`, not a 404: OPTIONS that is
 * not a CORS preflight (cors.ts) included, which express would otherwise answer itself with a 200.
 * Runs after auth: an OPTIONS request is an ordinary request and needs the key like any other.
 */
import type { RequestHandler } from 'express';
import { MethodNotAllowedError } from '../../errors.js';
import { routeOf } from './request-context.js';
import { allowedMethods } from '../route-table.js';

export function methodCheck(): RequestHandler {
  return (req, _res, next) => {
    const route = routeOf(req);
    if (route === undefined) return next();
    const allowed = allowedMethods(route);
    if (!allowed.includes(req.method)) return next(new MethodNotAllowedError(req.method, route.template, allowed));
    next();
  };
}
