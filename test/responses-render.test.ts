/**
 * The Responses stream numbers its output items in the order they stream: text after a tool call is a
 * message of its own at the next output_index, and response.completed lists the items as they streamed.
 */
import { expect, it } from 'vitest';
import { Answer } from '../src/http/core/answer.js';
import type { StreamEvent } from '../src/http/core/renderer.js';
import { responsesRenderer } from '../src/http/responses/render.js';
import { responsesSchema, type ResponsesBody } from '../src/http/responses/request.js';

const body: ResponsesBody = responsesSchema({ maxTokens: 100, maxMessages: 10, maxStop: 4, maxJsonDepth: 64 }).parse({ input: 'hi' });

interface Data {
  type: string;
  output_index?: number;
  item?: { type: string; id: string };
  item_id?: string;
  response?: { output: { type: string; id: string }[] };
}
const data = (events: StreamEvent[]) => events.map((e) => e.data as Data);

it('text, a call, then text again: three items at output_index 0, 1, 2, listed so in response.completed', () => {
  const r = responsesRenderer('m', body);
  const answer = new Answer();
  const events = [
    ...r.opening(3),
    ...r.text(0, 'Checking.'),
    ...r.toolCall(0, { index: 0, name: 'lookup', arguments: '{"q":' }),
    ...r.toolCall(0, { index: 0, arguments: '1}' }),
    ...r.text(0, 'Done'),
    ...r.text(0, '.'),
  ];
  answer.addText('Checking.Done.');
  answer.addToolCall({ index: 0, name: 'lookup', arguments: '{"q":1}' });
  answer.finishReason = 'stop';
  events.push(...r.closing({ promptTokens: 3, completionTokens: 5 }, [answer]));
  const all = data(events);

  const added = all.filter((d) => d.type === 'response.output_item.added');
  expect(added.map((d) => [d.output_index, d.item!.type])).toEqual([
    [0, 'message'],
    [1, 'function_call'],
    [2, 'message'],
  ]);
  const done = all.filter((d) => d.type === 'response.output_item.done');
  expect(done.map((d) => [d.output_index, d.item!.id])).toEqual(added.map((d) => [d.output_index, d.item!.id]));
  // Every delta names the index and item it belongs to.
  const ids = new Map(added.map((d) => [d.item!.id, d.output_index]));
  const deltas = all.filter((d) => d.type.endsWith('.delta'));
  expect(deltas.map((d) => d.output_index)).toEqual([0, 1, 1, 2, 2]);
  for (const d of deltas) expect(ids.get(d.item_id!)).toBe(d.output_index);
  // The second message is a new item: its id differs from the first.
  expect(added[0]!.item!.id).not.toBe(added[2]!.item!.id);

  const completed = all.at(-1)!;
  expect(completed.type).toBe('response.completed');
  expect(completed.response!.output.map((o) => [o.type, o.id])).toEqual(added.map((d) => [d.item!.type, d.item!.id]));
});

it('an answer of calls alone has no message item', () => {
  const r = responsesRenderer('m', body);
  const answer = new Answer();
  answer.addToolCall({ index: 0, name: 'f', arguments: '{}' });
  answer.finishReason = 'tool_calls';
  const all = data([
    ...r.opening(1),
    ...r.toolCall(0, { index: 0, name: 'f', arguments: '{}' }),
    ...r.closing({ promptTokens: 1, completionTokens: 2 }, [answer]),
  ]);
  expect(all.filter((d) => d.type === 'response.output_item.added').map((d) => [d.output_index, d.item!.type])).toEqual([
    [0, 'function_call'],
  ]);
  expect(all.at(-1)!.response!.output.map((o) => o.type)).toEqual(['function_call']);
});

it('empty text after a call (the logprobs of its closing tokens) opens no message item', () => {
  const r = responsesRenderer('m', body);
  const answer = new Answer();
  answer.addToolCall({ index: 0, name: 'f', arguments: '{}' });
  answer.finishReason = 'tool_calls';
  const logprobs = [{ token: '</tool_call>', logprob: -0.1, bytes: [], top: [] }];
  const all = data([
    ...r.opening(1),
    ...r.toolCall(0, { index: 0, name: 'f', arguments: '{}' }),
    ...r.text(0, '', logprobs),
    ...r.closing({ promptTokens: 1, completionTokens: 3 }, [answer]),
  ]);
  expect(all.filter((d) => d.type === 'response.output_item.added').map((d) => d.item!.type)).toEqual(['function_call']);
  expect(all.at(-1)!.response!.output.map((o) => o.type)).toEqual(['function_call']);
});
