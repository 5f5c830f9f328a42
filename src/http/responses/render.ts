/**
 * Responses API output: a `response` object whose `output` holds a `message` item (the answer's text, if
 * any) and one `function_call` item per tool call; streamed as typed events (response.created, …,
 * response.output_text.delta, response.function_call_arguments.delta, …, response.completed), each with
 * its `sequence_number`, as the official client's responses.create / stream helpers read them.
 */
import { randomBytes } from 'node:crypto';
import type { Usage } from '../../dispatch/job.js';
import type { ApiError } from '../../errors.js';
import type { TokenLogprob } from '../../shared/protocol.js';
import type { Answer } from '../core/answer.js';
import type { Renderer, StreamEvent } from '../core/renderer.js';
import type { ResponsesBody } from './request.js';

const id = (prefix: string) => `${prefix}_${randomBytes(16).toString('hex')}`;

const logprobsOf = (entries: readonly TokenLogprob[] | undefined) =>
  (entries ?? []).map((e) => ({
    token: e.token,
    logprob: e.logprob,
    bytes: e.bytes,
    top_logprobs: e.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  }));

/** An output item as it streams: the answer's text (a message) or one tool call, at its output_index. */
type Item =
  | { kind: 'message'; index: number; id: string; text: string; logprobs: TokenLogprob[] }
  | { kind: 'call'; index: number; id: string; callId: string; name: string; arguments: string };
type CallItem = Extract<Item, { kind: 'call' }>;
type MessageItem = Extract<Item, { kind: 'message' }>;

export function responsesRenderer(model: string, body: ResponsesBody): Renderer {
  const responseId = id('resp');
  const createdAt = Math.floor(Date.now() / 1000);
  // Output items in the order they streamed: text after a call opens a message of its own, at the next index.
  const items: Item[] = [];
  /** Calls by their index among the answer's calls (ToolCallDelta.index). */
  const calls: CallItem[] = [];
  let open: Item | undefined;
  let sequence = 0;
  const event = (type: string, data: object): StreamEvent => ({ event: type, data: { type, sequence_number: sequence++, ...data } });

  const messageItem = (messageId: string, status: string, answerText: string, logprobs: readonly TokenLogprob[] | undefined) => ({
    type: 'message',
    id: messageId,
    status,
    role: 'assistant',
    content: [{ type: 'output_text', text: answerText, annotations: [], logprobs: logprobsOf(logprobs) }],
  });
  const callItem = (c: Pick<CallItem, 'id' | 'callId' | 'name' | 'arguments'>, status: string) => ({
    type: 'function_call',
    id: c.id,
    call_id: c.callId,
    name: c.name,
    arguments: c.arguments,
    status,
  });
  const completedItem = (item: Item) =>
    item.kind === 'message' ? messageItem(item.id, 'completed', item.text, item.logprobs) : callItem(item, 'completed');

  const response = (status: string, output: object[], usage: Usage | null, incomplete: boolean) => ({
    id: responseId,
    object: 'response',
    created_at: createdAt,
    status,
    error: null,
    incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model,
    output,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    temperature: body.temperature ?? 1,
    top_p: body.top_p ?? 1,
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    text: { format: body.text?.format ?? { type: 'text' } },
    usage: usage && {
      input_tokens: usage.promptTokens,
      input_tokens_details: { cached_tokens: usage.cachedTokens ?? 0 },
      output_tokens: usage.completionTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.promptTokens + usage.completionTokens,
    },
  });

  /** The open item's closing events (when the next item starts, or at the end). */
  const closeOpen = (): StreamEvent[] => {
    const item = open;
    open = undefined;
    if (item === undefined) return [];
    if (item.kind === 'call') {
      return [
        event('response.function_call_arguments.done', { item_id: item.id, output_index: item.index, arguments: item.arguments }),
        event('response.output_item.done', { output_index: item.index, item: callItem(item, 'completed') }),
      ];
    }
    const where = { item_id: item.id, output_index: item.index, content_index: 0 };
    const logprobs = logprobsOf(item.logprobs);
    return [
      event('response.output_text.done', { ...where, text: item.text, logprobs }),
      event('response.content_part.done', { ...where, part: { type: 'output_text', text: item.text, annotations: [], logprobs } }),
      event('response.output_item.done', { output_index: item.index, item: completedItem(item) }),
    ];
  };

  const openMessage = (): StreamEvent[] => {
    const events = closeOpen();
    const item: MessageItem = { kind: 'message', index: items.length, id: id('msg'), text: '', logprobs: [] };
    items.push((open = item));
    events.push(
      event('response.output_item.added', {
        output_index: item.index,
        item: { ...messageItem(item.id, 'in_progress', '', []), content: [] },
      }),
      event('response.content_part.added', {
        item_id: item.id,
        output_index: item.index,
        content_index: 0,
        part: { type: 'output_text', text: '', annotations: [], logprobs: [] },
      }),
    );
    return events;
  };

  /** The non-streamed output: the message (if any text, or nothing at all), then the calls. */
  const output = (a: Answer) => [
    ...(a.text !== '' || a.toolCalls.length === 0 ? [messageItem(id('msg'), 'completed', a.text, a.logprobs)] : []),
    ...a.toolCalls.map((c) => callItem({ id: id('fc'), callId: id('call'), name: c.name, arguments: c.arguments }, 'completed')),
  ];

  return {
    opening: () => [
      event('response.created', { response: response('in_progress', [], null, false) }),
      event('response.in_progress', { response: response('in_progress', [], null, false) }),
    ],
    text: (_, delta, logprobs) => {
      // Empty text only carries the logprobs of held tokens (a call's closing tokens, for one): it opens no item,
      // or the stream would list an empty message that the non-streamed response does not have.
      if (delta === '' && open?.kind !== 'message') return [];
      const events = open?.kind === 'message' ? [] : openMessage();
      const message = open as MessageItem;
      message.text += delta;
      if (logprobs) message.logprobs.push(...logprobs);
      if (delta !== '')
        events.push(
          event('response.output_text.delta', {
            item_id: message.id,
            output_index: message.index,
            content_index: 0,
            delta,
            logprobs: logprobsOf(logprobs),
          }),
        );
      return events;
    },
    toolCall: (_, d) => {
      const events: StreamEvent[] = [];
      if (d.name !== undefined) {
        events.push(...closeOpen());
        const c: CallItem = { kind: 'call', index: items.length, id: id('fc'), callId: id('call'), name: d.name, arguments: '' };
        items.push((open = c));
        calls[d.index] = c;
        events.push(event('response.output_item.added', { output_index: c.index, item: callItem(c, 'in_progress') }));
      }
      const c = calls[d.index]!;
      c.arguments += d.arguments;
      if (d.arguments !== '')
        events.push(event('response.function_call_arguments.delta', { item_id: c.id, output_index: c.index, delta: d.arguments }));
      return events;
    },
    choiceDone: () => [],
    closing: (usage, answers) => {
      const a = answers[0]!;
      const events = closeOpen();
      const incomplete = a.finishReason === 'length';
      const streamed = items.length > 0 ? items.map(completedItem) : output(a);
      events.push(
        event(incomplete ? 'response.incomplete' : 'response.completed', {
          response: response(incomplete ? 'incomplete' : 'completed', streamed, usage, incomplete),
        }),
      );
      return events;
    },
    streamError: (err: ApiError) => [event('error', { code: err.code, message: err.message, param: err.param })],
    full: (answers, usage) => {
      const a = answers[0]!;
      const incomplete = a.finishReason === 'length';
      return response(incomplete ? 'incomplete' : 'completed', output(a), usage, incomplete);
    },
  };
}
