/** Scraping helpers for tests, on top of the project's exposition parser. */
import { parseExposition, type Sample } from '../../src/metrics/exposition-parser.js';

export { parseExposition, value, type Sample } from '../../src/metrics/exposition-parser.js';

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`);
  if (!res.ok) throw new Error(`scrape failed: ${res.status}`);
  return parseExposition(await res.text());
}

/** Every counter-like sample (counters and histogram parts) as a key → value map. */
export function cumulativeSamples(samples: Sample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (!/(_total|_bucket|_sum|_count)$/.test(s.name)) continue;
    if (s.name.startsWith('process_') || s.name.startsWith('nodejs_')) continue;
    out.set(`${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`, s.value);
  }
  return out;
}
