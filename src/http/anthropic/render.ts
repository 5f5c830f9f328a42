/**
 * Anthropic Messages output: a `message` with text and tool_use content blocks, `stop_reason` and
 * `usage`; streamed as Anthropic's events (message_start, content_block_start / _delta / _stop, ping,
 * message_delta, message_stop) with `event:` lines, as the Anthropic SDK reads them.
 */
import { randomBytes } from 'node:crypto';
import type { Usage } from '../../dispatch/job.js';
import type { FinishReason } from '../../shared/protocol.js';
import type { Answer } from '../core/answer.js';
import type { Renderer, StreamEvent } from '../core/renderer.js';
import { anthropicErrorBody } from './errors.js';

const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('base64url')}`;

function stopReason(a: Answer): string {
  const reasons: Record<FinishReason, string> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', abort: 'end_turn' };
  return a.finishReason === 'stop' && a.stopSequence !== undefined ? 'stop_sequence' : reasons[a.finishReason];
}

/** Arguments as an object (the grammar made them valid JSON; a call cut by max_tokens is not). */
function input(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return {};
  }
}

export function messagesRenderer(model: string): Renderer {
  const messageId = id('msg');
  const toolIds: string[] = [];
  const toolId = (i: number) => (toolIds[i] ??= id('toolu'));
  // Content blocks in order: text (once it arrives), then one per tool call.
  let block = -1;
  let textOpen = false;
  let callOpen = false;
  const event = (type: string, data: object): StreamEvent => ({ event: type, data: { type, ...data } });
  const closeBlock = (): StreamEvent[] => {
    if (!textOpen && !callOpen) return [];
    textOpen = callOpen = false;
    return [event('content_block_stop', { index: block })];
  };
  const content = (a: Answer) => [
    ...(a.text !== '' ? [{ type: 'text', text: a.text }] : []),
    ...a.toolCalls.map((c, i) => ({ type: 'tool_use', id: toolId(i), name: c.name, input: input(c.arguments) })),
  ];

  return {
    opening: (promptTokens) => [
      event('message_start', {
        message: {
          id: messageId,
          type: 'message',
          role: 'assistant',
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: promptTokens, output_tokens: 0 },
        },
      }),
      event('ping', {}),
    ],
    text: (_, text) => {
      const events: StreamEvent[] = [];
      if (!textOpen) {
        events.push(...closeBlock(), event('content_block_start', { index: ++block, content_block: { type: 'text', text: '' } }));
        textOpen = true;
      }
      if (text !== '') events.push(event('content_block_delta', { index: block, delta: { type: 'text_delta', text } }));
      return events;
    },
    toolCall: (_, d) => {
      const events: StreamEvent[] = [];
      if (d.name !== undefined) {
        events.push(
          ...closeBlock(),
          event('content_block_start', {
            index: ++block,
            content_block: { type: 'tool_use', id: toolId(d.index), name: d.name, input: {} },
          }),
        );
        callOpen = true;
      }
      if (d.arguments !== '')
        events.push(event('content_block_delta', { index: block, delta: { type: 'input_json_delta', partial_json: d.arguments } }));
      return events;
    },
    choiceDone: () => [],
    closing: (usage, answers) => [
      ...closeBlock(),
      event('message_delta', {
        delta: { stop_reason: stopReason(answers[0]!), stop_sequence: answers[0]!.stopSequence ?? null },
        usage: { output_tokens: usage.completionTokens },
      }),
      event('message_stop', {}),
    ],
    streamError: (err) => [{ event: 'error', data: anthropicErrorBody(err) }],
    full: (answers, usage: Usage) => {
      const a = answers[0]!;
      return {
        id: messageId,
        type: 'message',
        role: 'assistant',
        model,
        content: content(a),
        stop_reason: stopReason(a),
        stop_sequence: a.stopSequence ?? null,
        usage: {
          input_tokens: usage.promptTokens,
          output_tokens: usage.completionTokens,
          cache_read_input_tokens: usage.cachedTokens ?? 0,
          cache_creation_input_tokens: 0,
        },
      };
    },
  };
}
