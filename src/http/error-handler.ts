/**
 * Turns anything thrown in a route (or by express's body parser) into the OpenAI error shape.
 * Unknown errors become a 500 with a generic message; their details go to the log only.
 */
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { ApiError, InternalError, InvalidRequestError, PayloadTooLargeError } from '../errors.js';
import { GENERATION_ENDPOINTS } from '../metrics/definitions.js';
import type { MainMetrics } from '../metrics/main-metrics.js';
import { anthropicErrorBody } from './anthropic/render.js';

/** Anthropic's Messages API paths answer errors in Anthropic's shape; every other path in OpenAI's. */
const ANTHROPIC_PATHS = /^\/v1\/messages(\/|$)/;

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

export function errorHandler(log: Logger, metrics: MainMetrics) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    let apiError: ApiError;
    if (err instanceof ApiError) apiError = err;
    else {
      const mapped = typeof err === 'object' && err !== null ? fromBodyParser(err as BodyParserError) : undefined;
      if (mapped) apiError = mapped;
      else {
        log.error({ err, path: req.path }, 'unhandled error in request');
        apiError = new InternalError('Internal server error.');
      }
    }
    // A generation request refused for its content (schema, JSON, size, unknown model) before admission.
    if (GENERATION_ENDPOINTS.has(req.path) && [400, 404, 413].includes(apiError.status)) metrics.rejected('invalid');
    sendError(res, apiError);
  };
}
