/**
 * When to restart an engine process that exited: 0.5 s, then doubling up to 30 s while it keeps failing;
 * once a process has run for a minute, the next failure starts over at 0.5 s.
 */
export const FIRST_RESTART_MS = 500;
export const MAX_RESTART_MS = 30_000;
export const STABLE_MS = 60_000;

export class RestartBackoff {
  private next = FIRST_RESTART_MS;
  private upSince: number | undefined;

  constructor(private readonly clock: () => number = () => performance.now()) {}

  /** The process is up (its workers are ready). */
  up(): void {
    this.upSince = this.clock();
  }

  /** The process exited: how long to wait before starting the next one. */
  exited(): number {
    if (this.upSince !== undefined && this.clock() - this.upSince > STABLE_MS) this.next = FIRST_RESTART_MS;
    this.upSince = undefined;
    const delay = this.next;
    this.next = Math.min(MAX_RESTART_MS, this.next * 2);
    return delay;
  }
}
