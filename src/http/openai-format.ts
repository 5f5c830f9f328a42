/**
 * The OpenAI response objects for both endpoints. A Format knows how to wrap an answer for one endpoint,
 * so the streaming and non-streaming paths are shared between /v1/completions and /v1/chat/completions.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { FinishReason, TokenLogprob, ToolCallDelta } from '../shared/protocol.js';
import type { Usage } from '../dispatch/job.js';

export interface UsageBody {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageBody(u: Usage): UsageBody {
  return { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens };
}

/** A whole answer, gathered for a non-streamed response. */
export class Answer {
  text = '';
  readonly toolCalls: { name: string; arguments: string }[] = [];
  /** undefined when the request did not ask for logprobs. */
  logprobs: TokenLogprob[] | undefined;

  addText(text: string, logprobs?: TokenLogprob[]): void {
    this.text += text;
    this.addLogprobs(logprobs);
  }

  addToolCall(delta: ToolCallDelta, logprobs?: TokenLogprob[]): void {
    const call = (this.toolCalls[delta.index] ??= { name: '', arguments: '' });
    if (delta.name !== undefined) call.name = delta.name;
    call.arguments += delta.arguments;
    this.addLogprobs(logprobs);
  }

  private addLogprobs(logprobs: TokenLogprob[] | undefined): void {
    if (logprobs) (this.logprobs ??= []).push(...logprobs);
  }
}

export interface Format {
  id: string;
  /** Chunks sent before any text (chat: the role). */
  opening(): object[];
  chunk(text: string, logprobs?: TokenLogprob[]): object;
  /** A piece of a tool call (chat only; completions never have tools). */
  toolCallChunk(delta: ToolCallDelta, logprobs?: TokenLogprob[]): object;
  closing(finishReason: FinishReason): object;
  usageChunk(usage: Usage): object;
  full(answer: Answer, finishReason: FinishReason, usage: Usage): object;
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

export function completionFormat(model: string, includeUsage: boolean): Format {
  const m = meta('cmpl', model);
  const base = { ...m, object: 'text_completion' as const };
  const usageField = includeUsage ? { usage: null } : {};
  let offset = 0;
  const logprobsOf = (entries: TokenLogprob[] | undefined) => {
    if (!entries) return null;
    const body = completionLogprobs(entries, offset);
    offset += entries.reduce((n, e) => n + e.token.length, 0);
    return body;
  };
  const choice = (text: string, finish_reason: FinishReason | null, logprobs: object | null) => ({
    text,
    index: 0,
    finish_reason,
    logprobs,
  });
  return {
    id: m.id,
    opening: () => [],
    chunk: (text, logprobs) => ({ ...base, choices: [choice(text, null, logprobsOf(logprobs))], ...usageField }),
    toolCallChunk: () => {
      throw new Error('completions have no tool calls');
    },
    closing: (reason) => ({ ...base, choices: [choice('', reason, null)], ...usageField }),
    usageChunk: (u) => ({ ...base, choices: [], usage: usageBody(u) }),
    full: (a, reason, u) => ({ ...base, choices: [choice(a.text, reason, logprobsOf(a.logprobs))], usage: usageBody(u) }),
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

export function chatFormat(model: string, includeUsage: boolean): Format {
  const m = meta('chatcmpl', model);
  const chunkBase = { ...m, object: 'chat.completion.chunk' as const, system_fingerprint: null };
  const usageField = includeUsage ? { usage: null } : {};
  const ids: string[] = [];
  const idOf = (index: number) => (ids[index] ??= callId());
  const delta = (d: object, finish_reason: FinishReason | null, logprobs?: TokenLogprob[]) => ({
    ...chunkBase,
    choices: [{ index: 0, delta: d, finish_reason, logprobs: chatLogprobs(logprobs) }],
    ...usageField,
  });
  return {
    id: m.id,
    opening: () => [delta({ role: 'assistant', content: '' }, null)],
    chunk: (text, logprobs) => delta({ content: text }, null, logprobs),
    toolCallChunk: (d, logprobs) => {
      // The first piece of a call carries its id, type and name; the rest only more arguments.
      const call =
        d.name !== undefined
          ? { index: d.index, id: idOf(d.index), type: 'function', function: { name: d.name, arguments: d.arguments } }
          : { index: d.index, function: { arguments: d.arguments } };
      return delta({ tool_calls: [call] }, null, logprobs);
    },
    closing: (reason) => delta({}, reason),
    usageChunk: (u) => ({ ...chunkBase, choices: [], usage: usageBody(u) }),
    full: (a, reason, u) => {
      const toolCalls = a.toolCalls.map((c, i) => ({ id: idOf(i), type: 'function', function: { name: c.name, arguments: c.arguments } }));
      const message = {
        role: 'assistant',
        // OpenAI: content is null when the answer is only tool calls.
        content: toolCalls.length > 0 && a.text === '' ? null : a.text,
        refusal: null,
        ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
      };
      return {
        ...m,
        object: 'chat.completion',
        system_fingerprint: null,
        choices: [{ index: 0, message, finish_reason: reason, logprobs: chatLogprobs(a.logprobs) }],
        usage: usageBody(u),
      };
    },
  };
}
