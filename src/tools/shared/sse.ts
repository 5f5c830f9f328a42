/**
 * The server-sent events of an OpenAI stream (`data: {...}` blocks, then `data: [DONE]`), read
 * incrementally: one parser for the benchmark, the soak tool and the tests.
 */

/** `[DONE]` as the string '[DONE]'; every other payload parsed as JSON. */
export type SseData = unknown;

export class SseParser {
  private buffer = '';
  private readonly decoder = new TextDecoder();

  /** Adds a chunk of the body; returns the payloads of the blocks it completed, in order. */
  push(chunk: Uint8Array | string): SseData[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const out: SseData[] = [];
    let at: number;
    while ((at = this.buffer.indexOf('\n\n')) !== -1) {
      const block = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 2);
      if (!block.startsWith('data: ')) continue;
      const data = block.slice(6);
      out.push(data === '[DONE]' ? data : (JSON.parse(data) as unknown));
    }
    return out;
  }
}

/** Every payload of a whole SSE body. */
export async function readSse(res: Response): Promise<SseData[]> {
  return new SseParser().push(await res.text());
}
