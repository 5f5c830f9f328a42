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
import type { Answer } from '../answer.js';
import type { Renderer, StreamEvent } from '../respond.js';
import type { ResponsesBody } from './request.js';

const id = (prefix: string) => `${prefix}_${randomBytes(16).toString('hex')}`;

const logprobsOf = (entries: readonly TokenLogprob[] | undefined) =>
  (entries ?? []).map((e) => ({
    token: e.token,
    logprob: e.logprob,
    bytes: e.bytes,
    top_logprobs: e.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  }));

interface CallItem {
  id: string;
  callId: string;
  name: string;
  arguments: string;
}

export function responsesRenderer(model: string, body: ResponsesBody): Renderer {
  const responseId = id('resp');
  const createdAt = Math.floor(Date.now() / 1000);
  const messageId = id('msg');
  // Output items in order: the message (once text arrives), then the calls.
  let messageIndex: number | undefined;
  let text = '';
  const textLogprobs: TokenLogprob[] = [];
  const calls: CallItem[] = [];
  const closedCalls = new Set<CallItem>();
  const callIndex = (i: number) => (messageIndex === undefined ? 0 : 1) + i;
  let sequence = 0;
  const event = (type: string, data: object): StreamEvent => ({ event: type, data: { type, sequence_number: sequence++, ...data } });

  const messageItem = (status: string, answerText: string, logprobs: readonly TokenLogprob[] | undefined) => ({
    type: 'message',
    id: messageId,
    status,
    role: 'assistant',
    content: [{ type: 'output_text', text: answerText, annotations: [], logprobs: logprobsOf(logprobs) }],
  });
  const callItem = (c: CallItem, status: string) => ({
    type: 'function_call',
    id: c.id,
    call_id: c.callId,
    name: c.name,
    arguments: c.arguments,
    status,
  });

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

  /** The message item's closing events (when the first call arrives, or at the end). */
  let messageClosed = false;
  const closeMessage = (): StreamEvent[] => {
    if (messageIndex === undefined) return [];
    const where = { item_id: messageId, output_index: messageIndex, content_index: 0 };
    const part = { type: 'output_text', text, annotations: [], logprobs: logprobsOf(textLogprobs) };
    const events = [
      event('response.output_text.done', { ...where, text, logprobs: logprobsOf(textLogprobs) }),
      event('response.content_part.done', { ...where, part }),
      event('response.output_item.done', { output_index: messageIndex, item: messageItem('completed', text, textLogprobs) }),
    ];
    messageClosed = true;
    return events;
  };

  const output = (a: Answer) => [
    ...(a.text !== '' || a.toolCalls.length === 0 ? [messageItem('completed', a.text, a.logprobs)] : []),
    ...a.toolCalls.map((c, i) =>
      callItem({ id: calls[i]?.id ?? id('fc'), callId: calls[i]?.callId ?? id('call'), name: c.name, arguments: c.arguments }, 'completed'),
    ),
  ];

  return {
    opening: () => [
      event('response.created', { response: response('in_progress', [], null, false) }),
      event('response.in_progress', { response: response('in_progress', [], null, false) }),
    ],
    text: (_, delta, logprobs) => {
      const events: StreamEvent[] = [];
      if (messageIndex === undefined) {
        messageIndex = 0;
        events.push(event('response.output_item.added', { output_index: 0, item: { ...messageItem('in_progress', '', []), content: [] } }));
        events.push(
          event('response.content_part.added', {
            item_id: messageId,
            output_index: 0,
            content_index: 0,
            part: { type: 'output_text', text: '', annotations: [], logprobs: [] },
          }),
        );
      }
      text += delta;
      if (logprobs) textLogprobs.push(...logprobs);
      if (delta !== '')
        events.push(
          event('response.output_text.delta', {
            item_id: messageId,
            output_index: 0,
            content_index: 0,
            delta,
            logprobs: logprobsOf(logprobs),
          }),
        );
      return events;
    },
    toolCall: (_, d) => {
      const events = messageClosed ? [] : closeMessage();
      if (d.name !== undefined) {
        const previous = calls.at(-1);
        if (previous) events.push(...closeCall(previous, calls.length - 1));
        const c = { id: id('fc'), callId: id('call'), name: d.name, arguments: '' };
        calls.push(c);
        events.push(event('response.output_item.added', { output_index: callIndex(calls.length - 1), item: callItem(c, 'in_progress') }));
      }
      const c = calls[d.index]!;
      c.arguments += d.arguments;
      if (d.arguments !== '')
        events.push(
          event('response.function_call_arguments.delta', { item_id: c.id, output_index: callIndex(d.index), delta: d.arguments }),
        );
      return events;
    },
    choiceDone: () => [],
    closing: (usage, answers) => {
      const a = answers[0]!;
      const events = messageClosed ? [] : closeMessage();
      const last = calls.at(-1);
      if (last) events.push(...closeCall(last, calls.length - 1));
      const incomplete = a.finishReason === 'length';
      events.push(
        event(incomplete ? 'response.incomplete' : 'response.completed', {
          response: response(incomplete ? 'incomplete' : 'completed', output(a), usage, incomplete),
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

  function closeCall(c: CallItem, index: number): StreamEvent[] {
    if (closedCalls.has(c)) return [];
    closedCalls.add(c);
    return [
      event('response.function_call_arguments.done', { item_id: c.id, output_index: callIndex(index), arguments: c.arguments }),
      event('response.output_item.done', { output_index: callIndex(index), item: callItem(c, 'completed') }),
    ];
  }
}
