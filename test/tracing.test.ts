/**
 * OpenTelemetry traces from the real server to an OTLP/HTTP receiver inside the test (protobuf and JSON): the
 * span tree of a request (server span, prepare, queue, prompt and generate per choice), its GenAI attributes,
 * a client's traceparent continued, x-request-id on the span and in the logs, errors and client aborts in
 * the span status, text recorded only with --trace-content, and nothing sent when the sampler drops the trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './helpers/otlp-receiver.js';
import { openStream, postJson, startServer, type TestServer } from './helpers/server.js';

const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_SPAN = 'b7ad6b7169203331';

const chat = (url: string, body: object, headers: Record<string, string> = {}) =>
  postJson(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'tell me a story' }], max_tokens: 4, ...body }, headers);

/** The spans of one trace, once its server span has arrived (the batch processor exports within a second). */
async function traceOf(
  receiver: OtlpReceiver,
  traceId: string,
  children: number,
): Promise<{ server: ReceivedSpan; spans: ReceivedSpan[] }> {
  const spans = await receiver.waitFor(
    (all) =>
      all.filter((s) => s.traceId === traceId).length >= children + 1 && all.some((s) => s.traceId === traceId && s.kind === 'SERVER'),
    15_000,
  );
  const mine = spans.filter((s) => s.traceId === traceId);
  return { server: mine.find((s) => s.kind === 'SERVER')!, spans: mine };
}

describe('traces over OTLP/HTTP protobuf', () => {
  let receiver: OtlpReceiver;
  let server: TestServer;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    server = await startServer(['--otlp-endpoint', receiver.url, '--log-level', 'debug'], { env: { QWEN_TEST_FAULTS: '1' } });
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    await receiver.close();
  });

  it("continues the client's traceparent: a server span with prepare, and queue, prompt and generate per choice", async () => {
    const res = await chat(server.url, { n: 2 }, { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, 'x-request-id': 'client-req-42' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('client-req-42');
    const { server: span, spans } = await traceOf(receiver, CLIENT_TRACE, 7);
    expect(span.parentSpanId).toBe(CLIENT_SPAN);
    expect(span.name).toBe('POST /v1/chat/completions');
    const children = spans.filter((s) => s !== span);
    for (const c of children) expect(c.parentSpanId).toBe(span.spanId);
    expect(children.map((c) => c.name).sort()).toEqual(['generate', 'generate', 'prepare', 'prompt', 'prompt', 'queue', 'queue']);
    for (const name of ['queue', 'prompt', 'generate']) {
      expect(children.filter((c) => c.name === name).map((c) => c.attributes['qwen.choice'])).toEqual(expect.arrayContaining([0, 1]));
    }
    // Children lie inside the server span, and each choice's queue, prompt and generation follow each other.
    for (const c of children) {
      expect(c.startNs).toBeGreaterThanOrEqual(span.startNs);
      expect(c.endNs).toBeLessThanOrEqual(span.endNs);
    }
    const usage = res.body.usage as { prompt_tokens: number; completion_tokens: number };
    expect(span.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/chat/completions',
      'http.response.status_code': 200,
      'qwen.request_id': 'client-req-42',
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'tiny',
      'gen_ai.response.model': 'tiny',
      'gen_ai.request.max_tokens': 4,
      'gen_ai.request.choice.count': 2,
      'gen_ai.usage.input_tokens': usage.prompt_tokens,
      'gen_ai.usage.output_tokens': usage.completion_tokens,
      'gen_ai.response.finish_reasons': ['length', 'length'],
      'qwen.engine': 0,
    });
    expect(span.attributes['qwen.worker']).toEqual(expect.any(Number));
    // The worker's own clock: each choice's spans follow each other, and its 4 tokens are 3 decode steps after
    // the first, each a `decode` event inside the generation.
    for (const choice of [0, 1]) {
      const [queue, prompt, generate] = ['queue', 'prompt', 'generate'].map(
        (name) => children.find((c) => c.name === name && c.attributes['qwen.choice'] === choice)!,
      );
      expect(queue!.endNs).toBeLessThanOrEqual(prompt!.startNs);
      expect(prompt!.endNs).toBeLessThanOrEqual(generate!.startNs);
      expect(generate!.attributes['qwen.worker']).toEqual(expect.any(Number));
      expect(generate!.events.map((e) => e.attributes['qwen.tokens'])).toEqual([2, 3, 4]);
      for (const e of generate!.events) {
        expect(e.name).toBe('decode');
        expect(e.timeNs).toBeGreaterThanOrEqual(generate!.startNs);
        expect(e.timeNs).toBeLessThanOrEqual(generate!.endNs);
      }
    }
    expect(span.status.code).not.toBe('ERROR');
    expect(span.resource['service.name']).toBe('qwen-serve');
    // No text without --trace-content.
    for (const s of spans) expect(Object.keys(s.attributes).filter((k) => k === 'gen_ai.prompt' || k === 'gen_ai.completion')).toEqual([]);
    // Every log line of the request carries its id.
    const lines = server.logs.filter((l) => l.requestId === 'client-req-42');
    expect(lines.map((l) => l.msg)).toContain('request');
  });

  it("a long answer's decode steps are thinned evenly to at most 128 events", async () => {
    const traceId = '6af7651916cd43dd8448eb211c8031a2';
    const res = await postJson(
      `${server.url}/v1/completions`,
      { prompt: 'hello', max_tokens: 300, ignore_eos: true },
      { traceparent: `00-${traceId}-${CLIENT_SPAN}-01` },
    );
    expect(res.status).toBe(200);
    const { spans } = await traceOf(receiver, traceId, 4);
    const tokens = spans.find((s) => s.name === 'generate')!.events.map((e) => e.attributes['qwen.tokens'] as number);
    // 299 steps after the first token: every 4th (stride doubled twice) is kept, 74 events.
    expect(tokens).toHaveLength(74);
    expect(tokens.every((n, j) => n === 1 + (j + 1) * 4)).toBe(true);
  });

  it('a tool call has its grammar and tool_call spans, measured by the worker', async () => {
    const traceId = '7af7651916cd43dd8448eb211c8031a3';
    const tool = {
      type: 'function',
      function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string', maxLength: 6 } } } },
    };
    const res = await chat(
      server.url,
      { tools: [tool], tool_choice: 'required', max_tokens: 200, temperature: 0 },
      { traceparent: `00-${traceId}-${CLIENT_SPAN}-01` },
    );
    expect(res.status).toBe(200);
    expect(res.body.choices[0].finish_reason).toBe('tool_calls');
    const { spans } = await traceOf(receiver, traceId, 6);
    const byName = (name: string) => spans.find((s) => s.name === name)!;
    expect(spans.map((s) => s.name).sort()).toEqual([
      'POST /v1/chat/completions',
      'generate',
      'grammar',
      'prepare',
      'prompt',
      'queue',
      'tool_call',
    ]);
    expect(byName('prepare').attributes['qwen.grammar']).toBe(true);
    // The grammar is compiled before the prompt is evaluated; the call lies within the generation.
    expect(byName('grammar').endNs).toBeLessThanOrEqual(byName('prompt').startNs);
    expect(byName('tool_call').startNs).toBeGreaterThanOrEqual(byName('prompt').endNs);
    expect(byName('tool_call').endNs).toBeLessThanOrEqual(byName('generate').endNs);
  });

  it('a request without a traceparent starts a trace; an implausible x-request-id is replaced', async () => {
    const before = receiver.spans.length;
    const res = await chat(server.url, {}, { 'x-request-id': 'bad id with spaces' });
    expect(res.status).toBe(200);
    const id = res.headers.get('x-request-id')!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const spans = await receiver.waitFor(
      (all) => all.slice(before).some((s) => s.kind === 'SERVER' && s.attributes['qwen.request_id'] === id),
      15_000,
    );
    const span = spans.find((s) => s.attributes['qwen.request_id'] === id)!;
    expect(span.parentSpanId).toBeUndefined();
  });

  it('an error sets the server span and the failed choice to ERROR', async () => {
    const traceId = '1af7651916cd43dd8448eb211c80319d';
    const res = await postJson(
      `${server.url}/v1/completions`,
      { prompt: 'x __qwen_fault:throw__', max_tokens: 8 },
      { traceparent: `00-${traceId}-${CLIENT_SPAN}-01` },
    );
    expect(res.status).toBeGreaterThanOrEqual(500);
    const { server: span, spans } = await traceOf(receiver, traceId, 3);
    expect(span.status.code).toBe('ERROR');
    expect(span.attributes['http.response.status_code']).toBe(res.status);
    expect(spans.find((s) => s.name === 'generate')!.status.code).toBe('ERROR');
  });

  it('a client that leaves mid-stream ends the span with ERROR', async () => {
    const traceId = '2af7651916cd43dd8448eb211c80319e';
    const controller = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${CLIENT_SPAN}-01` },
      body: JSON.stringify({ prompt: 'hello', max_tokens: 2000, ignore_eos: true, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    const { server: span } = await traceOf(receiver, traceId, 0);
    expect(span.status).toMatchObject({ code: 'ERROR', message: 'client closed the connection' });
  });
});

describe('traces over OTLP/HTTP JSON, with --trace-content, a sampler and an engine process', () => {
  let receiver: OtlpReceiver;
  let server: TestServer;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    // The engine process's workers report their times over its IPC channel.
    server = await startServer(['--trace-content', '--engines', '1', '--context-size', '16384'], {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'rag-api',
        OTEL_TRACES_SAMPLER: 'parentbased_always_on',
      },
    });
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    await receiver.close();
  });

  it('records the prompt and the completion, in JSON, under the configured service name', async () => {
    const traceId = '3af7651916cd43dd8448eb211c80319f';
    const res = await chat(server.url, {}, { traceparent: `00-${traceId}-${CLIENT_SPAN}-01` });
    const { server: span, spans } = await traceOf(receiver, traceId, 4);
    expect(receiver.requests['application/json']).toBeGreaterThan(0);
    expect(receiver.requests['application/x-protobuf']).toBe(0);
    expect(span.resource['service.name']).toBe('rag-api');
    // The prompt as the model read it (the chat template applied), one per prompt.
    const [prompt] = spans.find((s) => s.name === 'prepare')!.attributes['gen_ai.prompt'] as string[];
    expect(prompt).toMatch(/<\|im_start\|>user\ntell me a story<\|im_end\|>/);
    const generate = spans.find((s) => s.name === 'generate')!;
    expect(generate.attributes['gen_ai.completion']).toBe(res.body.choices[0].message.content);
    expect(generate.attributes['qwen.engine']).toBe(0);
    expect(generate.events.map((e) => e.attributes['qwen.tokens'])).toEqual([2, 3, 4].slice(0, res.body.usage.completion_tokens - 1));
  });

  it('a prompt longer than a trace keeps is recorded cut, with its length', async () => {
    const traceId = '8af7651916cd43dd8448eb211c8031a4';
    // 18 000 characters in 12 000 tokens: more than a trace keeps, within the context.
    const long = ' hello'.repeat(3000);
    const res = await postJson(
      `${server.url}/v1/completions`,
      { prompt: long, max_tokens: 1 },
      { traceparent: `00-${traceId}-${CLIENT_SPAN}-01` },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { spans } = await traceOf(receiver, traceId, 4);
    const [prompt] = spans.find((s) => s.name === 'prepare')!.attributes['gen_ai.prompt'] as string[];
    expect(prompt!.startsWith(' hello hello')).toBe(true);
    expect(prompt).toMatch(/… \[\d+ more characters\]$/);
    expect(prompt!.length).toBeLessThan(16_384 + 40);
  });

  it("a client's unsampled traceparent is respected: nothing is exported, and the request is served", async () => {
    const traceId = '4af7651916cd43dd8448eb211c8031a0';
    const res = await chat(server.url, {}, { traceparent: `00-${traceId}-${CLIENT_SPAN}-00` });
    expect(res.status).toBe(200);
    // A later sampled request's spans arrive; the unsampled one's never do.
    const later = '5af7651916cd43dd8448eb211c8031a1';
    await chat(server.url, {}, { traceparent: `00-${later}-${CLIENT_SPAN}-01` });
    await traceOf(receiver, later, 4);
    expect(receiver.spans.some((s) => s.traceId === traceId)).toBe(false);
  });

  it('streams carry their spans too', async () => {
    const before = receiver.spans.length;
    const { rest } = await openStream(server.url, { prompt: 'hi', max_tokens: 3 });
    await rest;
    // openStream sends no traceparent: find the stream's server span by route.
    const spans = await receiver.waitFor(
      (all) => all.slice(before).some((s) => s.kind === 'SERVER' && s.attributes['http.route'] === '/v1/completions'),
      15_000,
    );
    const span = spans.slice(before).find((s) => s.kind === 'SERVER' && s.attributes['http.route'] === '/v1/completions')!;
    expect(span.attributes['qwen.stream']).toBe(true);
  });
});
