/**
 * The OpenAI response objects for both endpoints. A Format knows how to wrap text for one endpoint,
 * so the streaming and non-streaming paths are shared between /v1/completions and /v1/chat/completions.
 */
import { randomUUID } from 'node:crypto';
import type { FinishReason } from '../shared/protocol.js';
import type { Usage } from '../dispatch/job.js';

export interface UsageBody {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageBody(u: Usage): UsageBody {
  return { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens };
}

export interface Format {
  id: string;
  /** Chunks sent before any text (chat: the role). */
  opening(): object[];
  chunk(text: string): object;
  closing(finishReason: FinishReason): object;
  usageChunk(usage: Usage): object;
  full(text: string, finishReason: FinishReason, usage: Usage): object;
}

interface Meta {
  id: string;
  created: number;
  model: string;
}

function meta(prefix: string, model: string): Meta {
  return { id: `${prefix}-${randomUUID().replace(/-/g, '')}`, created: Math.floor(Date.now() / 1000), model };
}

export function completionFormat(model: string, includeUsage: boolean): Format {
  const m = meta('cmpl', model);
  const base = { ...m, object: 'text_completion' as const };
  const usageField = includeUsage ? { usage: null } : {};
  const choice = (text: string, finish_reason: FinishReason | null) => ({ text, index: 0, finish_reason, logprobs: null });
  return {
    id: m.id,
    opening: () => [],
    chunk: (text) => ({ ...base, choices: [choice(text, null)], ...usageField }),
    closing: (reason) => ({ ...base, choices: [choice('', reason)], ...usageField }),
    usageChunk: (u) => ({ ...base, choices: [], usage: usageBody(u) }),
    full: (text, reason, u) => ({ ...base, choices: [choice(text, reason)], usage: usageBody(u) }),
  };
}

export function chatFormat(model: string, includeUsage: boolean): Format {
  const m = meta('chatcmpl', model);
  const chunkBase = { ...m, object: 'chat.completion.chunk' as const, system_fingerprint: null };
  const usageField = includeUsage ? { usage: null } : {};
  const delta = (d: object, finish_reason: FinishReason | null) => ({
    ...chunkBase,
    choices: [{ index: 0, delta: d, finish_reason, logprobs: null }],
    ...usageField,
  });
  return {
    id: m.id,
    opening: () => [delta({ role: 'assistant', content: '' }, null)],
    chunk: (text) => delta({ content: text }, null),
    closing: (reason) => delta({}, reason),
    usageChunk: (u) => ({ ...chunkBase, choices: [], usage: usageBody(u) }),
    full: (text, reason, u) => ({
      ...m,
      object: 'chat.completion',
      system_fingerprint: null,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, finish_reason: reason, logprobs: null }],
      usage: usageBody(u),
    }),
  };
}
