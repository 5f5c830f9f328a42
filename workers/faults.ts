/**
 * Test-only fault injection, active only when the server runs with QWEN_TEST_FAULTS=1 (never set in
 * production): a prompt containing a marker makes this worker fail in a chosen way, so tests can prove
 * that a failing or dying worker costs only its own requests.
 *
 * Only the tokenizer worker looks for the marker, and only when fault injection is on (QWEN_TEST_FAULTS,
 * read once at start-up into its workerData): it puts what it found on the task (`fault`), and the model
 * worker acts on that. A real request costs one flag check in each, nothing that grows with its input.
 */
export type Fault = 'throw' | 'crash' | undefined;

const MARKER = /__qwen_fault:(throw|crash)__/;

/** The marker in `text`, if any. Call it only with fault injection on. */
export function faultIn(text: string): Fault {
  return (MARKER.exec(text)?.[1] as Fault) ?? undefined;
}

/** Stops the request's generation so that its task can end the worker (see crashWorker). */
export class InjectedCrash extends Error {
  constructor() {
    super('injected fault: worker crash');
  }
}

/** Called after each generated token of a request that carries a fault marker. */
export function injectFault(fault: Fault, generated: number): void {
  if (fault === 'throw' && generated >= 2) throw new Error('injected fault: generation threw');
  if (fault === 'crash' && generated >= 2) throw new InjectedCrash();
}

/**
 * Ends this worker thread (Piscina replaces it). Not from inside the token callback: a token arrives in
 * the completion callback of a native sampling call, and a worker that exits there aborts the whole process
 * (node-addon-api throws from OnAsyncWorkComplete; seen as an intermittent SIGABRT of the test server).
 * On a later turn, with the generation stopped, no native call is in flight — tests use it with one
 * sequence per worker, so no other request's decode is either.
 */
export async function crashWorker(): Promise<never> {
  await new Promise((resolve) => setImmediate(resolve));
  process.exit(70);
}
