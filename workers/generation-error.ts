import type { ErrorPayload } from '../src/shared/protocol.js';

/** A request the worker refuses or fails, with the error the client gets (the prompt does not fit, a schema does not compile). */
export class GenerationError extends Error {
  constructor(readonly payload: ErrorPayload) {
    super(payload.message);
  }
}
