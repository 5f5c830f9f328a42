/** The workload every endpoint gets: a fixed prompt, a fixed number of generated tokens, streamed. */

export interface Workload {
  promptTokens: number;
  genTokens: number;
  temperature: number;
  /** Requests per concurrency level (each client sends until this many were sent). */
  requests: (concurrency: number) => number;
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];

/** A prompt of about `tokens` tokens for BPE vocabularies (one common word ≈ one token); usage reports the real count. */
export function promptText(tokens: number): string {
  return Array.from({ length: Math.max(1, tokens) }, (_, i) => WORDS[i % WORDS.length]).join(' ');
}

/** Runs `total` jobs with `concurrency` workers; returns the results in completion order. */
export async function runClients<T>(
  concurrency: number,
  total: number,
  job: (index: number) => Promise<T>,
  onDone?: (n: number) => void,
): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        results.push(await job(i));
        onDone?.(results.length);
      }
    }),
  );
  return results;
}
