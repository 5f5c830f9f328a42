/** Sampling as every dialect asks for it, with OpenAI's defaults, in the form a worker reads. */
import type { SamplingParams } from '../../shared/protocol.js';

export interface SamplingRequest {
  temperature?: number | null;
  topP?: number | null;
  topK?: number | null;
  seed?: number | null;
  presencePenalty?: number | null;
  frequencyPenalty?: number | null;
  stop?: string | readonly string[] | null;
  ignoreEos?: boolean | null;
  /** false: no speculative decoding for this request (vendor field `speculative`). */
  speculative?: boolean | null;
  /** Token id (as a JSON key) → bias. */
  logitBias?: Record<string, number> | null;
  /** undefined: as many as the context and the request's budget allow. */
  maxTokens: number | undefined;
  /** The dialect's name for maxTokens (`max_completion_tokens`, `max_output_tokens`), for errors. */
  maxTokensParam: string;
}

/** OpenAI defaults: temperature 1, top_p 1; top_k off. Empty stop strings are dropped. */
export function samplingParams(r: SamplingRequest): SamplingParams {
  const stop = r.stop == null ? [] : typeof r.stop === 'string' ? [r.stop] : [...r.stop];
  return {
    temperature: r.temperature ?? 1,
    topP: r.topP ?? 1,
    topK: r.topK ?? 0,
    seed: r.seed ?? undefined,
    presencePenalty: r.presencePenalty ?? 0,
    frequencyPenalty: r.frequencyPenalty ?? 0,
    maxTokens: r.maxTokens,
    maxTokensParam: r.maxTokensParam,
    stop: stop.filter((s) => s.length > 0),
    ignoreEos: r.ignoreEos ?? false,
    speculative: r.speculative ?? true,
    logitBias: Object.entries(r.logitBias ?? {}).map(([token, bias]) => [Number(token), bias]),
  };
}
