/**
 * Waiting for a task's final message (`done` / `error`) after the task itself has settled.
 *
 * The task's promise and its channel's messages travel separately (Piscina's result and the task's
 * MessagePort; a child's IPC and the same port inside it), and two ports have no order between them: the
 * promise can settle first. One turn of the event loop is no guarantee under load; a bounded wait is. A
 * task that settled and sent no final message within the grace is failed (its worker lost it).
 */

/** How long a settled task's final message may lag behind it. Only a lost message ever waits this long. */
export const FINAL_MESSAGE_GRACE_MS = 5000;

/** Resolves when `final` does, or after `graceMs`, whichever comes first (the timer does not outlive it). */
export function finalOrGrace(final: Promise<unknown>, graceMs = FINAL_MESSAGE_GRACE_MS): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, graceMs);
    timer.unref();
    void final.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
