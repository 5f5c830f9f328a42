/** Polling instead of sleeping: the one `until` every test and helper uses. */

/** Polls `probe` until it returns something other than undefined (errors count as "not yet"). */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const got = await probe();
      if (got !== undefined) return got;
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A probe for `until`: `read()`'s value once `ok` holds for it. */
export function when<T>(read: () => Promise<T>, ok: (v: T) => boolean): () => Promise<T | undefined> {
  return async () => {
    const v = await read();
    return ok(v) ? v : undefined;
  };
}
