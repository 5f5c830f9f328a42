/**
 * How well the server batched during a level, read from its own decode-step histograms
 * (qwen_decode_step_*) of the benchmarked model: steps, tokens and sequences per step, time per step. Other
 * endpoints (llama-server) do not export them and get no figures.
 */
import { parseExposition, value, type Sample } from '../../metrics/exposition-parser.js';
import { WORKER, type StepTotals } from '../../metrics/definitions.js';

export type { StepTotals } from '../../metrics/definitions.js';

export interface StepFigures {
  steps: number;
  tokensPerStep: number;
  sequencesPerStep: number;
  msPerStep: number;
}

/**
 * The cumulative totals of `model` now (its series only: on a server with several models, the others' traffic
 * stays out of the figures), or undefined when the endpoint has no such metrics for it.
 */
export async function readStepTotals(url: string, model: string, apiKey?: string): Promise<StepTotals | undefined> {
  const res = await fetch(`${url}/metrics`, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} });
  if (!res.ok) return undefined;
  return stepTotals(parseExposition(await res.text()), model);
}

/** The decode-step totals of one model's series in a parsed exposition (undefined when it has none). */
export function stepTotals(samples: Sample[], model: string): StepTotals | undefined {
  const ofModel = { model };
  const count = `${WORKER.stepTokens.name}_count`;
  if (!samples.some((s) => s.name === count && s.labels.model === model)) return undefined;
  return {
    steps: value(samples, count, ofModel),
    tokens: value(samples, `${WORKER.stepTokens.name}_sum`, ofModel),
    sequences: value(samples, `${WORKER.stepSequences.name}_sum`, ofModel),
    seconds: value(samples, `${WORKER.stepTime.name}_sum`, ofModel),
  };
}

/** Adds the difference `after - before` to `into` (rounds of one level add up). */
export function addDelta(into: StepTotals, before: StepTotals, after: StepTotals): void {
  into.steps += after.steps - before.steps;
  into.tokens += after.tokens - before.tokens;
  into.sequences += after.sequences - before.sequences;
  into.seconds += after.seconds - before.seconds;
}

export function figures(t: StepTotals): StepFigures {
  const per = (n: number) => (t.steps > 0 ? n / t.steps : NaN);
  return { steps: t.steps, tokensPerStep: per(t.tokens), sequencesPerStep: per(t.sequences), msPerStep: per(t.seconds * 1000) };
}
