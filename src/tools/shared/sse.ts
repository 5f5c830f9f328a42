/**
 * Server-sent events read incrementally, by eventsource-parser (the WHATWG rules: `event:` and `id:`
 * fields, comments, LF, CR or CRLF line ends, `data:` over several lines): one parser for the benchmark, the
 * soak tool and the tests; the dashboard's playground runs the same package in the browser.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** An event's data: `[DONE]` as the string '[DONE]', any other data parsed as JSON. */
export type SseData = unknown;

/** One event: its `event:` name (undefined when it has none, as OpenAI's chunks) and its data. */
export interface SseEvent {
  event: string | undefined;
  data: SseData;
}

const payload = (data: string): SseData => (data === '[DONE]' ? data : (JSON.parse(data) as unknown));

export class SseParser {
  private readonly decoder = new TextDecoder();
  private completed: EventSourceMessage[] = [];
  private readonly parser = createParser({ onEvent: (message) => this.completed.push(message) });

  /** Adds a chunk of the body; returns the events it completed, in order. */
  events(chunk: Uint8Array | string): SseEvent[] {
    this.parser.feed(typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true }));
    const done = this.completed;
    this.completed = [];
    return done.map((m) => ({ event: m.event, data: payload(m.data) }));
  }

  /** Adds a chunk of the body; returns the data of the events it completed, in order. */
  push(chunk: Uint8Array | string): SseData[] {
    return this.events(chunk).map((e) => e.data);
  }
}

/** The data of every event of a whole SSE body. */
export async function readSse(res: Response): Promise<SseData[]> {
  return new SseParser().push(await res.text());
}
