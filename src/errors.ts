/**
 * Every error a client can see, as one table of classes. Each has a stable `code` (what clients and
 * metrics key on), an HTTP status and an OpenAI error `type`, so routes never invent ad-hoc shapes.
 *
 * The main thread and the workers share this module: an error found in a worker (a prompt that does not
 * fit, a schema that does not compile) is thrown there as one of these classes, crosses the thread
 * boundary once as an ErrorPayload (`toPayload()`), and is rebuilt on the main thread
 * (`ApiError.fromPayload()`). It imports nothing, so anything may import it.
 */

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'timeout_error';

export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null };
}

/**
 * An ApiError as plain, structured-cloneable data: what a worker sends on its port (WorkerMessage `error`,
 * PrepareResult). Response headers do not travel: no error a worker raises has any.
 */
export interface ErrorPayload {
  status: number;
  type: OpenAIErrorType;
  code: string;
  message: string;
  param: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly type: OpenAIErrorType;
  readonly code: string;
  readonly param: string | null;
  /** Extra response headers (Retry-After, Connection). */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    type: OpenAIErrorType,
    code: string,
    message: string,
    param: string | null = null,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.type = type;
    this.code = code;
    this.param = param;
    this.headers = headers;
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  /** This error as data, to send across a thread or process boundary; `ApiError.fromPayload` rebuilds it. */
  toPayload(): ErrorPayload {
    return { status: this.status, type: this.type, code: this.code, message: this.message, param: this.param };
  }

  /** Rebuilds an error that a worker sent (status, type, code, message and param as they were). */
  static fromPayload(p: ErrorPayload): ApiError {
    return new ApiError(p.status, p.type, p.code, p.message, p.param);
  }
}

export class InvalidRequestError extends ApiError {
  constructor(message: string, param: string | null = null, code = 'invalid_request') {
    super(400, 'invalid_request_error', code, message, param);
  }
}

export class ContextLengthExceededError extends ApiError {
  constructor(message: string, param: string | null) {
    super(400, 'invalid_request_error', 'context_length_exceeded', message, param);
  }

  /**
   * An embedding input that does not fit one sequence with a cell to spare (node-llama-cpp's rule): checked
   * on the main thread from its tokens, and in the worker with what the model adds (BOS/EOS).
   */
  static embeddingInput(contextSize: number, param: string, tokens: number): ContextLengthExceededError {
    return new ContextLengthExceededError(
      `This model's maximum context length is ${contextSize} tokens (--context-size), so an input may have at most ${contextSize - 1}; ${param} has ${tokens} tokens. Shorten it.`,
      param,
    );
  }
}

/** A JSON schema (response_format, tool parameters) that is not valid or that the grammar cannot enforce. */
export class InvalidSchemaError extends ApiError {
  constructor(message: string, param: string) {
    super(400, 'invalid_request_error', 'invalid_schema', message, param);
  }
}

/** A path whose %-escapes do not decode (the router could not read a path parameter). */
export class InvalidPathError extends ApiError {
  constructor() {
    super(
      400,
      'invalid_request_error',
      'invalid_path',
      'The request path is not valid percent-encoding (a % must start a UTF-8 escape such as %20).',
    );
  }
}

/** JSON nested deeper than --max-json-depth: in the body, or in a JSON string the server parses (tool call arguments). */
export class JsonTooDeepError extends ApiError {
  constructor(param: string, maxDepth: number) {
    super(
      400,
      'invalid_request_error',
      'json_too_deep',
      `${param}: JSON nested deeper than ${maxDepth} levels of arrays and objects (--max-json-depth)`,
      param,
    );
  }
}

/**
 * What Node's HTTP parser refuses before a request exists (server 'clientError'): a malformed request line
 * or header (400), headers over Node's 16 KB limit (431), headers that took too long to arrive (408).
 */
export class MalformedHttpError extends ApiError {
  constructor(message: string) {
    super(400, 'invalid_request_error', 'bad_request', message, null, { Connection: 'close' });
  }
}

export class HeadersTooLargeError extends ApiError {
  constructor() {
    super(431, 'invalid_request_error', 'headers_too_large', "The request headers exceed the server's limit of 16 KB.", null, {
      Connection: 'close',
    });
  }
}

/** Node's headersTimeout or requestTimeout ran out before the request had arrived. */
export class ClientTimeoutError extends ApiError {
  constructor() {
    super(408, 'invalid_request_error', 'client_timeout', 'The request (its headers or its body) did not arrive in time.', null, {
      Connection: 'close',
    });
  }
}

/** A request's schemas exceed an operator limit (--max-enum-values, --max-schema-bytes, …): the message names the flag. */
export class SchemaLimitError extends ApiError {
  constructor(param: string, what: string, limit: number, flag: string) {
    super(400, 'invalid_request_error', 'schema_too_large', `${param}: ${what}; the limit is ${limit} (${flag})`, param);
  }
}

/** The grammar composed from a request's schemas has more rules than --max-grammar-rules allows. */
export class GrammarTooLargeError extends ApiError {
  constructor(param: string, rules: number, limit: number) {
    super(
      400,
      'invalid_request_error',
      'grammar_too_large',
      `${param}: the schemas compile to a grammar of ${rules} rules; the limit is ${limit} (--max-grammar-rules). Use fewer or simpler schemas.`,
      param,
    );
  }
}

/**
 * A request asks for more than its budget: n × max_tokens over --max-request-tokens, or its log
 * probabilities over --max-request-logprobs. The message names the fields, the numbers and the flag.
 */
export class RequestBudgetError extends ApiError {
  constructor(message: string, param: string) {
    super(400, 'invalid_request_error', 'request_too_large', message, param);
  }
}

export class UnauthorizedError extends ApiError {
  constructor(message: string) {
    super(401, 'invalid_request_error', 'invalid_api_key', message, null, { 'WWW-Authenticate': 'Bearer' });
  }
}

export class NotFoundError extends ApiError {
  constructor(message: string, code = 'not_found', param: string | null = null) {
    super(404, 'invalid_request_error', code, message, param);
  }
}

/** A Host header that --allowed-hosts does not allow (the DNS rebinding guard), or none on HTTP/1.1. */
export class HostNotAllowedError extends ApiError {
  constructor(message: string) {
    super(403, 'invalid_request_error', 'host_not_allowed', message);
  }
}

/** A known route asked with a method it does not serve; `Allow` lists those it does. */
export class MethodNotAllowedError extends ApiError {
  constructor(method: string, template: string, allowed: readonly string[]) {
    super(
      405,
      'invalid_request_error',
      'method_not_allowed',
      `${method} ${template} is not allowed: this route answers ${allowed.join(', ')}.`,
      null,
      { Allow: allowed.join(', ') },
    );
  }
}

export class PayloadTooLargeError extends ApiError {
  constructor(limitBytes: number) {
    super(413, 'invalid_request_error', 'payload_too_large', `Request body exceeds the limit of ${limitBytes} bytes.`);
  }
}

export class QueueFullError extends ApiError {
  constructor(retryAfterSeconds: number) {
    super(429, 'rate_limit_error', 'queue_full', 'The server is at capacity and its queue is full; retry later.', null, {
      'Retry-After': String(retryAfterSeconds),
      'retry-after-ms': String(retryAfterSeconds * 1000),
    });
  }
}

export class RequestTimeoutError extends ApiError {
  constructor(seconds: number) {
    super(504, 'timeout_error', 'request_timeout', `The request did not finish within --request-timeout (${seconds} s).`);
  }
}

export class ShuttingDownError extends ApiError {
  constructor() {
    super(503, 'server_error', 'shutting_down', 'The server is shutting down and accepts no new requests.', null, {
      Connection: 'close',
    });
  }
}

export class NotReadyError extends ApiError {
  constructor(message = 'The model is still loading.') {
    super(503, 'server_error', 'model_loading', message);
  }
}

/** A served model that could not be loaded: the others go on serving; this one answers 503 until a restart. */
export class ModelUnavailableError extends ApiError {
  constructor(model: string, why: string) {
    super(503, 'server_error', 'model_unavailable', `The model '${model}' could not be loaded: ${why}`);
  }
}

export class WorkerFailedError extends ApiError {
  constructor(message: string) {
    super(503, 'server_error', 'worker_failed', message);
  }
}

export class EngineFailedError extends ApiError {
  constructor(engine: number, device: string, how: string) {
    super(
      503,
      'server_error',
      'engine_failed',
      `The engine process serving this request (engine ${engine}, device ${device}) exited (${how}); it is restarting. Please retry.`,
    );
  }
}

export class InternalError extends ApiError {
  constructor(message: string, code = 'internal_error') {
    super(500, 'server_error', code, message);
  }
}

/** A startup problem the operator must fix (bad flag, missing model); the CLI prints it and exits. */
export class ConfigError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'ConfigError';
    this.exitCode = exitCode;
  }
}
