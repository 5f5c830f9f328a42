/**
 * The size of each request's JSON body, recorded by the body parser (its `verify` hook sees the raw bytes):
 * the tokenizer threads put large requests in a lane of their own (src/prepare/preparer.ts).
 */
import type { IncomingMessage } from 'node:http';

const sizes = new WeakMap<IncomingMessage, number>();

/** express.json's `verify` option. */
export function recordBodySize(req: IncomingMessage, _res: unknown, buf: Buffer): void {
  sizes.set(req, buf.length);
}

/** Bytes of the request's body (0 when it had none). */
export function bodySize(req: IncomingMessage): number {
  return sizes.get(req) ?? 0;
}
