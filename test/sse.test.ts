/**
 * The shared SSE reader (src/tools/shared/sse.ts, eventsource-parser): named events, CRLF and CR line ends,
 * data over several lines, comments and ids, fed in chunks that split lines, line ends and UTF-8 characters.
 */
import { describe, expect, it } from 'vitest';
import { SseParser, type SseEvent } from '../src/tools/shared/sse.js';

/** Feeds `body` as UTF-8 bytes in chunks of `size` bytes; returns every event completed. */
function feed(body: string, size: number): SseEvent[] {
  const bytes = Buffer.from(body, 'utf8');
  const parser = new SseParser();
  const out: SseEvent[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(...parser.events(bytes.subarray(at, at + size)));
  return out;
}

// A stream in the style of Anthropic's and the Responses API's (named events), with CRLF line ends, a comment,
// an id, data split over two lines (joined with "\n") and non-ASCII text, then OpenAI's [DONE].
const STREAM = [
  ': keep-alive\r\n\r\n',
  'event: message_start\r\nid: 1\r\ndata: {"type":"message_start"}\r\n\r\n',
  'event: content_block_delta\r\ndata: {"type":"content_block_delta",\r\ndata: "text":"你好，世界"}\r\n\r\n',
  'data: {"n":1}\r\r', // CR alone ends lines too
  'data:{"n":2}\n\n', // no space after the colon
  'data: [DONE]\n\n',
].join('');

const EXPECTED: SseEvent[] = [
  { event: 'message_start', data: { type: 'message_start' } },
  { event: 'content_block_delta', data: { type: 'content_block_delta', text: '你好，世界' } },
  { event: undefined, data: { n: 1 } },
  { event: undefined, data: { n: 2 } },
  { event: undefined, data: '[DONE]' },
];

describe('SseParser', () => {
  it('reads named events, CRLF and CR line ends, multi-line data and comments, whole or in chunks of any size', () => {
    expect(feed(STREAM, Buffer.byteLength(STREAM))).toEqual(EXPECTED);
    // Every chunk size from 1 byte up splits a CRLF pair, a field name or a UTF-8 character somewhere.
    for (let size = 1; size <= 40; size++) expect(feed(STREAM, size), `chunks of ${size} bytes`).toEqual(EXPECTED);
  });

  it('returns an event only once its blank line has arrived, and the data of each from push()', () => {
    const parser = new SseParser();
    expect(parser.push('event: ping\r\ndata: {"a":1}\r\n')).toEqual([]);
    expect(parser.push('\r')).toEqual([]);
    expect(parser.push('\ndata: {"b":2}\n\n')).toEqual([{ a: 1 }, { b: 2 }]);
    // A body that ends without the blank line has not finished its last event: it is not dispatched.
    expect(parser.push('data: {"c":3}\n')).toEqual([]);
  });

  it('throws on data that is neither JSON nor [DONE]', () => {
    expect(() => new SseParser().push('data: not json\n\n')).toThrow(SyntaxError);
  });
});
