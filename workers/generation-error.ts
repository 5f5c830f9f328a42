import { ApiError } from '../src/errors.js';
import type { ErrorPayload } from '../src/shared/protocol.js';

/** A request the worker refuses or fails, with the error the client gets (the prompt does not fit, a schema does not compile). */
export class GenerationError extends Error {
  constructor(readonly payload: ErrorPayload) {
    super(payload.message);
  }
}

/** Runs `check`; a client error it throws (ApiError) becomes a GenerationError carrying it. */
export function asGenerationError<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw err instanceof ApiError ? new GenerationError(err.toPayload()) : err;
  }
}
