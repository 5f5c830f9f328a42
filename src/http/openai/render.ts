/**
 * The OpenAI response objects of /v1/completions and /v1/chat/completions, as Renderers for respond.ts
 * (which shares the streaming and non-streaming paths between every API).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { FinishReason, TokenLogprob } from '../../shared/protocol.js';
import type { Usage } from '../../dispatch/job.js';
import type { Renderer, StreamEvent } from '../core/renderer.js';

interface UsageBody {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

function usageBody(u: Usage): UsageBody {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens ?? 0 },
  };
}

interface Meta {
  id: string;
  created: number;
  model: string;
}

function meta(prefix: string, model: string): Meta {
  return { id: `${prefix}-${randomUUID().replace(/-/g, '')}`, created: Math.floor(Date.now() / 1000), model };
}

/** OpenAI's completions logprobs: parallel arrays, alternatives as token → logprob maps. */
function completionLogprobs(entries: readonly TokenLogprob[], startOffset: number) {
  let offset = startOffset;
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top.map((t) => [t.token, t.logprob]))),
    text_offset: entries.map((e) => {
      const at = offset;
      offset += e.token.length;
      return at;
    }),
  };
}

const DONE: StreamEvent = { data: '[DONE]' };

export interface OpenAIOptions {
  model: string;
  /** stream_options.include_usage: every chunk has `usage: null`, and a last chunk carries the usage. */
  includeUsage: boolean;
  /** completions `echo`: each choice's prompt text, sent before its answer. */
  echo?: readonly string[];
}

/** /v1/completions: `text_completion` objects, one choice per prompt × n. */
export function completionRenderer({ model, includeUsage, echo }: OpenAIOptions): Renderer {
  const m = meta('cmpl', model);
  const base = { ...m, object: 'text_completion' as const };
  const usageField = includeUsage ? { usage: null } : {};
  const offsets = new Map<number, number>();
  const logprobsOf = (index: number, entries: readonly TokenLogprob[] | undefined) => {
    if (!entries) return null;
    const offset = offsets.get(index) ?? echo?.[index]?.length ?? 0;
    offsets.set(index, offset + entries.reduce((n, e) => n + e.token.length, 0));
    return completionLogprobs(entries, offset);
  };
  const choice = (index: number, text: string, finish_reason: FinishReason | null, logprobs: object | null) => ({
    text,
    index,
    finish_reason,
    logprobs,
  });
  const chunk = (c: object): StreamEvent => ({ data: { ...base, choices: [c], ...usageField } });
  return {
    opening: () => (echo ? echo.map((text, i) => chunk(choice(i, text, null, null))) : []),
    text: (i, text, logprobs) => [chunk(choice(i, text, null, logprobsOf(i, logprobs)))],
    toolCall: () => [],
    choiceDone: (i, reason) => [chunk(choice(i, '', reason, null))],
    closing: (u) => [...(includeUsage ? [{ data: { ...base, choices: [], usage: usageBody(u) } }] : []), DONE],
    streamError: (err) => [{ data: err.toBody() }, DONE],
    full: (answers, u) => ({
      ...base,
      choices: answers.map((a, i) => choice(i, (echo?.[i] ?? '') + a.text, a.finishReason, logprobsOf(i, a.logprobs))),
      usage: usageBody(u),
    }),
  };
}

/** OpenAI's chat logprobs entry. */
const chatLogprob = (e: TokenLogprob) => ({
  token: e.token,
  logprob: e.logprob,
  bytes: e.bytes,
  top_logprobs: e.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
});

const chatLogprobs = (entries: readonly TokenLogprob[] | undefined) =>
  entries ? { content: entries.map(chatLogprob), refusal: null } : null;

/** Tool call ids, in OpenAI's style (call_ + 24 random characters). */
const callId = () => `call_${randomBytes(18).toString('base64url').slice(0, 24)}`;

/** /v1/chat/completions: `chat.completion` objects and `chat.completion.chunk` deltas, one choice per n. */
export function chatRenderer({ model, includeUsage }: OpenAIOptions, choices: number): Renderer {
  const m = meta('chatcmpl', model);
  const chunkBase = { ...m, object: 'chat.completion.chunk' as const, system_fingerprint: null };
  const usageField = includeUsage ? { usage: null } : {};
  const ids = Array.from({ length: choices }, (): string[] => []);
  const idOf = (choice: number, index: number) => (ids[choice]![index] ??= callId());
  const delta = (index: number, d: object, finish_reason: FinishReason | null, logprobs?: readonly TokenLogprob[]): StreamEvent => ({
    data: { ...chunkBase, choices: [{ index, delta: d, finish_reason, logprobs: chatLogprobs(logprobs) }], ...usageField },
  });
  return {
    opening: () => ids.map((_, i) => delta(i, { role: 'assistant', content: '' }, null)),
    text: (i, text, logprobs) => [delta(i, { content: text }, null, logprobs)],
    toolCall: (i, d, logprobs) => {
      // The first piece of a call carries its id, type and name; the rest only more arguments.
      const call =
        d.name !== undefined
          ? { index: d.index, id: idOf(i, d.index), type: 'function', function: { name: d.name, arguments: d.arguments } }
          : { index: d.index, function: { arguments: d.arguments } };
      return [delta(i, { tool_calls: [call] }, null, logprobs)];
    },
    choiceDone: (i, reason) => [delta(i, {}, reason)],
    closing: (u) => [...(includeUsage ? [{ data: { ...chunkBase, choices: [], usage: usageBody(u) } }] : []), DONE],
    streamError: (err) => [{ data: err.toBody() }, DONE],
    full: (answers, u) => ({
      ...m,
      object: 'chat.completion',
      system_fingerprint: null,
      choices: answers.map((a, i) => {
        const toolCalls = a.toolCalls.map((c, j) => ({
          id: idOf(i, j),
          type: 'function',
          function: { name: c.name, arguments: c.arguments },
        }));
        const message = {
          role: 'assistant',
          // OpenAI: content is null when the answer is only tool calls.
          content: toolCalls.length > 0 && a.text === '' ? null : a.text,
          refusal: null,
          ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
        };
        return { index: i, message, finish_reason: a.finishReason, logprobs: chatLogprobs(a.logprobs) };
      }),
      usage: usageBody(u),
    }),
  };
}
