/**
 * What the server knows about a request before any route runs: its id (sent back as `x-request-id`) and
 * the route it matched. The route is decided once, here, by the app's route table; metrics labels, auth's
 * open paths, the 405s and the error shape all read it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import type { EndpointLabel } from '../metrics/definitions.js';
import type { Route, RouteMatcher } from './route-table.js';

interface RequestInfo {
  id: string;
  route: Route | undefined;
}

const infos = new WeakMap<IncomingMessage, RequestInfo>();

/** The first middleware of an app: gives the request its id and its route. */
export function requestContext(match: RouteMatcher): RequestHandler {
  return (req, res, next) => {
    const info: RequestInfo = { id: randomUUID(), route: match(req.path) };
    infos.set(req, info);
    res.set('x-request-id', info.id);
    next();
  };
}

function infoOf(req: IncomingMessage): RequestInfo {
  const info = infos.get(req);
  if (!info) throw new Error('requestContext() must be the first middleware of the app');
  return info;
}

export const requestIdOf = (req: IncomingMessage): string => infoOf(req).id;

/** The route the request's path matched, whatever its method; undefined for an unknown path. */
export const routeOf = (req: IncomingMessage): Route | undefined => infoOf(req).route;

/**
 * The one function that decides a request's `endpoint` label: its route's template, `other` for a path
 * that matched no route, undefined for routes that are not API requests (probes, scrapes, the dashboard).
 */
export function endpointLabel(req: IncomingMessage): EndpointLabel | undefined {
  const route = routeOf(req);
  return route === undefined ? 'other' : route.label;
}
