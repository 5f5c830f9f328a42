/** The workload every endpoint gets: a fixed prompt, a fixed number of generated tokens, streamed. */

/**
 * What the prompts ask for: `plain`, a fixed list of words; `copy`, a passage and the request to repeat it (answers
 * that quote their input, where speculative n-gram drafts are right; greedy, the random-weight model repeats itself
 * too); `free`, a passage that never repeats, sampled with repeat penalties (drafts are rarely right).
 */
export const WORKLOADS = ['plain', 'copy', 'free'] as const;
export type WorkloadKind = (typeof WORKLOADS)[number];

export interface Workload {
  kind: WorkloadKind;
  promptTokens: number;
  genTokens: number;
  temperature: number;
  /** Requests per concurrency level (each client sends until this many were sent). */
  requests: (concurrency: number) => number;
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];

/** A prompt of about `tokens` tokens for BPE vocabularies (one common word ≈ one token); usage reports the real count. */
function promptText(tokens: number): string {
  return Array.from({ length: Math.max(1, tokens) }, (_, i) => WORDS[i % WORDS.length]).join(' ');
}

/** A passage of about `tokens` distinct words (no n-gram repeats). */
function passage(tokens: number): string {
  return Array.from({ length: Math.max(1, tokens) }, (_, i) => `w${(i * 7919) % 100_003}`).join(' ');
}

/** The prompt and the sampling fields of a request of workload `w`. */
export function requestOf(w: Workload): { prompt: string; temperature: number; frequency_penalty?: number; presence_penalty?: number } {
  switch (w.kind) {
    case 'plain':
      return { prompt: promptText(w.promptTokens), temperature: w.temperature };
    case 'copy':
      return { prompt: `${passage(w.promptTokens)}\n\nRepeat the text above, word for word:\n`, temperature: w.temperature };
    case 'free':
      return { prompt: passage(w.promptTokens), temperature: w.temperature, frequency_penalty: 1.5, presence_penalty: 1 };
  }
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
