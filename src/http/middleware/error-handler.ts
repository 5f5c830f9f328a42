/**
 * The one error path: turns anything thrown in a route (or by express's body parser) into an ApiError,
 * writes it in the shape of the route's dialect (request-context.ts), and logs every server fault it
 * answers, once. Unknown errors become a 500 with a generic message; their details go to the log only.
 */
import type { NextFunction, Request, Response } from 'express';
import { ApiError, InternalError, InvalidPathError, InvalidRequestError, PayloadTooLargeError } from '../../errors.js';
import { GENERATION_ENDPOINTS } from '../../metrics/definitions.js';
import type { MainMetrics } from '../../metrics/main-metrics.js';
import { claimFaultReport, endpointLabel, errorBodyOf, loggerOf, routeOf } from './request-context.js';

/** 503s that report a state (loading, draining), not a fault: /health answers them to every probe. */
const STATES = new Set(['model_loading', 'shutting_down']);

/**
 * Logs a server fault (a 5xx other than a readiness state) at error level, once per request, with the
 * request id and code and never the request's content. Errors pass here where they are answered: sendError,
 * or respond() for an error that ends a stream; a 5xx written any other way is logged by request-context.ts.
 */
export function logServerFault(res: Response, err: ApiError, cause?: unknown): void {
  const req = res.req;
  if (err.status < 500 || !claimFaultReport(req) || STATES.has(err.code)) return;
  loggerOf(req).error(
    { status: err.status, code: err.code, message: err.message, route: routeOf(req)?.template, err: cause },
    'server error answered',
  );
}

export function sendError(res: Response, err: ApiError, cause?: unknown): void {
  logServerFault(res, err, cause);
  if (res.headersSent) {
    res.end();
    return;
  }
  if (res.destroyed) return;
  res.status(err.status).set(err.headers).json(errorBodyOf(res.req)(err));
}

interface BodyParserError {
  type?: string;
  limit?: number;
  status?: number;
}

function fromBodyParser(err: BodyParserError): ApiError | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return new InvalidRequestError('The request body is not valid JSON.', null, 'invalid_json');
    case 'entity.too.large':
      return new PayloadTooLargeError(err.limit ?? 0);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new InvalidRequestError('The request body must be UTF-8 JSON.', null, 'unsupported_encoding');
    case 'request.aborted':
      return new InvalidRequestError('The request was aborted by the client.', null, 'request_aborted');
    default:
      if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
        return new InvalidRequestError('The request body could not be read.', null, 'invalid_body');
      }
      return undefined;
  }
}

/** An error of express itself (body parser, router), as the client's fault it reports; undefined if it is none. */
function fromExpress(err: unknown): ApiError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  // The router could not percent-decode a path parameter (`/v1/models/%E0%A4%A`).
  if (err instanceof URIError && (err as BodyParserError).status === 400) return new InvalidPathError();
  return fromBodyParser(err);
}

/** @param modelOf the served model a refused request was for (its `model` label), when known */
export function errorHandler(metrics: MainMetrics, modelOf?: (req: Request, res: Response) => string | undefined) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const known = err instanceof ApiError ? err : fromExpress(err);
    const apiError = known ?? new InternalError('Internal server error.');
    // A generation request refused for its content (schema, JSON, size, unknown model) before admission.
    const label = endpointLabel(req);
    if (label !== undefined && GENERATION_ENDPOINTS.has(label) && [400, 404, 413].includes(apiError.status))
      metrics.rejected('invalid', modelOf?.(req, res));
    sendError(res, apiError, known ? undefined : err);
  };
}
