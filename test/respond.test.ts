/** The SSE writer coalesces text for a client that reads slower than tokens arrive, and loses nothing. */
import { EventEmitter } from 'node:events';
import type { Response } from 'express';
import { expect, it } from 'vitest';
import { Answer } from '../src/http/core/answer.js';
import { completionRenderer } from '../src/http/openai/render.js';
import { StreamOutput } from '../src/http/core/stream-output.js';
import { InternalError } from '../src/errors.js';

class FakeResponse extends EventEmitter {
  writes: string[] = [];
  writableNeedDrain = false;
  destroyed = false;
  ended = false;
  writeHead() {
    return this;
  }
  write(s: string) {
    this.writes.push(s);
    return !this.writableNeedDrain;
  }
  end() {
    this.ended = true;
  }
}

/** The stream of one choice, driven as respond() drives it. */
function handlersFor(res: FakeResponse) {
  const out = new StreamOutput(res as unknown as Response, completionRenderer({ model: 'm', includeUsage: false }));
  const answer = new Answer();
  return {
    onStarted: (promptTokens: number) => out.start(promptTokens),
    onText: (t: string) => out.text(0, t),
    onDone: (reason: 'stop' | 'length', usage: { promptTokens: number; completionTokens: number }) => {
      out.choiceDone(0, reason, answer);
      out.close(usage, [answer]);
    },
  };
}

it('holds text while the socket needs draining and sends it as one chunk on drain', () => {
  const res = new FakeResponse();
  const h = handlersFor(res);
  h.onStarted(1);
  h.onText('a');
  res.writableNeedDrain = true;
  h.onText('b');
  h.onText('c');
  h.onText('d');
  const before = res.writes.length;
  res.writableNeedDrain = false;
  res.emit('drain');
  h.onText('e');
  h.onDone('length', { promptTokens: 1, completionTokens: 5 });
  const texts = res.writes
    .filter((w) => w !== 'data: [DONE]\n\n')
    .map((w) => JSON.parse(w.slice(6)) as { choices: { text: string }[] })
    .map((c) => c.choices[0]!.text);
  // 'b', 'c' and 'd' arrived while the socket was full: they waited for drain and went out as one chunk.
  expect(texts.join('')).toBe('abcde');
  expect(texts).toEqual(['a', 'bcd', 'e', '']);
  expect(before).toBe(1);
  expect(res.ended).toBe(true);
});

it('flushes held text before the final chunk even without a drain', () => {
  const res = new FakeResponse();
  const h = handlersFor(res);
  h.onStarted(1);
  res.writableNeedDrain = true;
  h.onText('x');
  h.onText('y');
  h.onDone('stop', { promptTokens: 1, completionTokens: 2 });
  const last = res.writes
    .filter((w) => w.includes('"text"'))
    .map((w) => (JSON.parse(w.slice(6)) as { choices: { text: string }[] }).choices[0]!.text);
  expect(last).toEqual(['xy', '']);
});

it('writes nothing once the stream has ended, and starts no stream on a response that already answered', () => {
  const res = new FakeResponse();
  const out = new StreamOutput(res as unknown as Response, completionRenderer({ model: 'm', includeUsage: false }));
  out.start(1);
  out.fail(new InternalError('boom'));
  (res as unknown as { writableEnded: boolean }).writableEnded = true;
  const written = res.writes.length;
  // A sibling choice's late text or tool call after the error ended the response: dropped, not written after end().
  out.text(0, 'late');
  out.toolCall(0, { index: 0, name: 'f', arguments: '{}' });
  expect(res.writes).toHaveLength(written);

  const answered = new FakeResponse();
  (answered as unknown as { headersSent: boolean }).headersSent = true;
  const late = new StreamOutput(answered as unknown as Response, completionRenderer({ model: 'm', includeUsage: false }));
  late.start(1);
  late.text(0, 'x');
  expect(late.started).toBe(false);
  expect(answered.writes).toEqual([]);
});
