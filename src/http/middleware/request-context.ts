/**
 * What the server knows about a request before any route runs: its id (the client's `x-request-id` when it sends
 * a plausible one, else a new UUID; sent back as `x-request-id` and put in every log line about it) and the route it matched. The route is decided once, here, by the
 * app's route table; metrics labels, auth's open paths, the 405s and the error shape all read it. And the
 * guarantee that a 5xx is logged: errors are logged where they are answered (error-handler.ts), and a 5xx
 * written any other way is logged when its response ends.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { ApiError } from '../../errors.js';
import type { EndpointLabel } from '../../metrics/definitions.js';
import { dialectUnder, routeMatcher, type Dialect, type Route } from '../route-table.js';

/** An API's error body (OpenAI's `{error: {message, type, param, code}}`, Anthropic's `{type: 'error', …}`). */
export type ErrorBody = (err: ApiError) => object;

/** The error body of each dialect whose errors are not in OpenAI's shape. */
export type ErrorBodies = Partial<Record<Dialect, ErrorBody>>;

const openaiErrorBody: ErrorBody = (err) => err.toBody();

interface RequestInfo {
  id: string;
  route: Route | undefined;
  /** The request's logger: every line it writes carries the request id. */
  log: Logger;
  /** Whether an error answered on this request has been through logServerFault (logged or deliberately not). */
  faultReported: boolean;
  /** How this request's errors are written: its route's dialect decides (OpenAI's shape for unknown paths). */
  errorBody: ErrorBody;
}

const infos = new WeakMap<IncomingMessage, RequestInfo>();

/** An `x-request-id` the server adopts: short, and nothing that could break a log line or a header. */
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The first middleware of an app serving `routes`: gives the request its id, its route and its error shape. */
export function requestContext(routes: readonly Route[], log: Logger, errorBodies: ErrorBodies = {}): RequestHandler {
  const match = routeMatcher(routes);
  const dialectOf = dialectUnder(routes);
  return (req, res, next) => {
    const route = match(req.path);
    const dialect = route ? route.dialect : dialectOf(req.path);
    const errorBody = (dialect && errorBodies[dialect]) ?? openaiErrorBody;
    // A client's (or a proxy's) own id is kept when it is a plausible one, so its logs and ours line up.
    const given = req.get('x-request-id');
    const id = given !== undefined && CLIENT_ID.test(given) ? given : randomUUID();
    const info: RequestInfo = { id, route, log: log.child({ requestId: id }), faultReported: false, errorBody };
    infos.set(req, info);
    res.set('x-request-id', info.id);
    res.once('close', () => {
      if (res.statusCode < 500 || info.faultReported) return;
      info.log.error({ status: res.statusCode, route: info.route?.template }, 'server error answered');
    });
    next();
  };
}

function infoOf(req: IncomingMessage): RequestInfo {
  const info = infos.get(req);
  if (!info) throw new Error('requestContext() must be the first middleware of the app');
  return info;
}

export const requestIdOf = (req: IncomingMessage): string => infoOf(req).id;

export const loggerOf = (req: IncomingMessage): Logger => infoOf(req).log;

export const errorBodyOf = (req: IncomingMessage): ErrorBody => infoOf(req).errorBody;

/**
 * Claims the one log line a 5xx of this request gets, for whoever answers it (error-handler.ts); false
 * when it was claimed already. A 5xx nobody claimed is logged when the response ends.
 */
export function claimFaultReport(req: IncomingMessage): boolean {
  const info = infoOf(req);
  if (info.faultReported) return false;
  info.faultReported = true;
  return true;
}

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
