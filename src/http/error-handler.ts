/**
 * Turns anything thrown in a route (or by express's body parser) into the OpenAI error shape.
 * Unknown errors become a 500 with a generic message; their details go to the log only.
 */
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { ApiError, InternalError, InvalidPathError, InvalidRequestError, PayloadTooLargeError } from '../errors.js';
import { GENERATION_ENDPOINTS } from '../metrics/definitions.js';
import type { MainMetrics } from '../metrics/main-metrics.js';
import { anthropicErrorBody } from './anthropic/render.js';
import { endpointLabel } from './request-context.js';

/** Anthropic's Messages API paths answer errors in Anthropic's shape; every other path in OpenAI's. */
const ANTHROPIC_PATHS = /^\/v1\/messages(\/|$)/i;

export function sendError(res: Response, err: ApiError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const anthropic = ANTHROPIC_PATHS.test(res.req.path);
  res
    .status(err.status)
    .set(err.headers)
    .json(anthropic ? anthropicErrorBody(err) : err.toBody());
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
  return fromBodyParser(err as BodyParserError);
}

export function errorHandler(log: Logger, metrics: MainMetrics) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    let apiError: ApiError;
    if (err instanceof ApiError) apiError = err;
    else {
      const mapped = fromExpress(err);
      if (mapped) apiError = mapped;
      else {
        log.error({ err, path: req.path }, 'unhandled error in request');
        apiError = new InternalError('Internal server error.');
      }
    }
    // A generation request refused for its content (schema, JSON, size, unknown model) before admission.
    const label = endpointLabel(req);
    if (label !== undefined && GENERATION_ENDPOINTS.has(label) && [400, 404, 413].includes(apiError.status)) metrics.rejected('invalid');
    sendError(res, apiError);
  };
}
