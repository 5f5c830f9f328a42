/** Anthropic's error shape: every error on the Messages API's routes, before or during a stream. */
import type { ApiError } from '../../errors.js';

/** Anthropic's error types by HTTP status; other 5xx are `api_error`, other 4xx `invalid_request_error`. */
const ERROR_TYPES: Record<number, string> = {
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
};

export function anthropicErrorBody(err: ApiError): object {
  const type = ERROR_TYPES[err.status] ?? (err.status >= 500 ? 'api_error' : 'invalid_request_error');
  return { type: 'error', error: { type, message: err.message } };
}
