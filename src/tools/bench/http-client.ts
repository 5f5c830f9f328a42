/**
 * Streams one completion from any OpenAI-compatible endpoint (qwen-serve, llama-server, vLLM) and times
 * it: time to first token, the gaps between content chunks, end to end.
 */
import { SseParser } from '../shared/sse.js';
import { resolveServedModel } from './served-model.js';
import type { RequestSample } from './stats.js';
import type { Workload } from './workload.js';
import { requestOf } from './workload.js';

export interface Endpoint {
  name: string;
  url: string;
  model: string;
  apiKey?: string;
}

/** An endpoint and the model its requests name: `servedModel` when given, else its first generation model. */
export async function resolveEndpoint(name: string, url: string, apiKey?: string, servedModel?: string): Promise<Endpoint> {
  return { name, url, apiKey, model: await resolveServedModel(url, servedModel, apiKey) };
}

export async function streamCompletion(ep: Endpoint, w: Workload): Promise<RequestSample> {
  const startMs = performance.now();
  let ttftMs = NaN;
  let last = NaN;
  const itlMs: number[] = [];
  let chunks = 0;
  let usageTokens: number | undefined;
  try {
    const res = await fetch(`${ep.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(ep.apiKey ? { authorization: `Bearer ${ep.apiKey}` } : {}) },
      body: JSON.stringify({
        model: ep.model,
        ...requestOf(w),
        max_tokens: w.genTokens,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
    const sse = new SseParser();
    for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
      const now = performance.now();
      for (const payload of sse.push(part)) {
        if (payload === '[DONE]') continue;
        const data = payload as {
          choices?: { text?: string }[];
          usage?: { completion_tokens: number };
          error?: unknown;
        };
        if (data.error) throw new Error(`error chunk: ${JSON.stringify(data.error)}`);
        if (data.usage) usageTokens = data.usage.completion_tokens;
        if (data.choices?.[0]?.text) {
          chunks++;
          if (Number.isNaN(ttftMs)) ttftMs = now - startMs;
          else itlMs.push(now - last);
          last = now;
        }
      }
    }
    return { startMs, endMs: performance.now(), ttftMs, itlMs, tokens: usageTokens ?? chunks };
  } catch (err) {
    return { startMs, endMs: performance.now(), ttftMs, itlMs, tokens: 0, error: (err as Error).message };
  }
}
