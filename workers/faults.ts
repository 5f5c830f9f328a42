/**
 * Test-only fault injection, active only when the server runs with QWEN_TEST_FAULTS=1 (never set in
 * production): a prompt containing a marker makes this worker fail in a chosen way, so tests can prove
 * that a failing or dying worker costs only its own requests.
 */
export type Fault = 'throw' | 'crash' | undefined;

const MARKER = /__qwen_fault:(throw|crash)__/;

export function faultIn(text: string, enabled: boolean): Fault {
  if (!enabled) return undefined;
  return (MARKER.exec(text)?.[1] as Fault) ?? undefined;
}

/** Called after each generated token of a request that carries a fault marker. */
export function injectFault(fault: Fault, generated: number): void {
  if (fault === 'throw' && generated >= 2) throw new Error('injected fault: generation threw');
  // process.exit in a worker thread ends only this worker; Piscina then replaces it. It runs between two
  // decode steps of this request; tests use it with one sequence per worker, so no other decode is in flight
  // (ending a worker mid-decode aborts the whole process).
  if (fault === 'crash' && generated >= 2) process.exit(70);
}
