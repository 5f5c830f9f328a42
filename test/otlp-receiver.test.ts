/**
 * The test OTLP receiver (test/helpers/otlp-receiver.ts), checked against the real OpenTelemetry SDK and
 * its two OTLP/HTTP exporters before any server test relies on it: the same spans, exported once as
 * protobuf and once as JSON, must decode to the same thing, and that thing must be what the SDK recorded.
 */
import zlib from 'node:zlib';
import { context, SpanKind, SpanStatusCode, trace, TraceFlags, type Span } from '@opentelemetry/api';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './helpers/otlp-receiver.js';

// A remote parent, as a client's `traceparent` would give it. Bytes above 0x7f catch a signed or
// base64 mix-up in the id decoding.
const REMOTE_TRACE_ID = 'ff00a1b2c3d4e5f60718293a4b5c6d7e';
const REMOTE_SPAN_ID = '80f067aa0ba902b7';
/** The parent span's attributes, one of each kind the receiver decodes: it must give back exactly these. */
const PARENT_ATTRIBUTES = {
  'gen_ai.operation.name': 'chat',
  'gen_ai.request.max_tokens': 16,
  'gen_ai.request.temperature': 0.25,
  'qwen.stream': false,
  'qwen.big': 2 ** 40,
  'qwen.negative': -42,
  'gen_ai.response.finish_reasons': ['stop', 'length'],
  'qwen.numbers': [1, 2.5],
  'qwen.flags': [true, false],
};

// Spans started in the same clock tick share a start time: order by id to compare two exports.
const bySpanId = (spans: ReceivedSpan[]) => [...spans].sort((a, b) => a.spanId.localeCompare(b.spanId));
const named = (spans: ReceivedSpan[], name: string) => {
  const found = spans.filter((s) => s.name === name);
  expect(found, name).toHaveLength(1);
  return found[0]!;
};
const hrToNs = ([s, ns]: [number, number]) => BigInt(s) * 1_000_000_000n + BigInt(ns);

describe('the OTLP/HTTP test receiver', () => {
  let json: OtlpReceiver;
  let proto: OtlpReceiver;
  let provider: BasicTracerProvider;
  const memory = new InMemorySpanExporter();

  beforeAll(async () => {
    [json, proto] = await Promise.all([startOtlpReceiver(), startOtlpReceiver()]);
    provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'otlp-receiver-test', 'service.version': '1.2.3' }),
      spanProcessors: [
        new SimpleSpanProcessor(new JsonExporter({ url: `${json.url}/v1/traces` })),
        new SimpleSpanProcessor(new ProtoExporter({ url: `${proto.url}/v1/traces` })),
        new SimpleSpanProcessor(memory),
      ],
    });
    const tracer = provider.getTracer('qwen-serve-test', '0.0.1');

    // Contexts are passed explicitly: no context manager is registered in this process.
    const remote = trace.setSpanContext(context.active(), {
      traceId: REMOTE_TRACE_ID,
      spanId: REMOTE_SPAN_ID,
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
    const parent: Span = tracer.startSpan(
      'POST /v1/chat/completions',
      {
        kind: SpanKind.SERVER,
        attributes: PARENT_ATTRIBUTES,
      },
      remote,
    );
    const child = tracer.startSpan(
      'generate',
      { attributes: { 'gen_ai.usage.output_tokens': 7, 'qwen.text': 'héllo ✓' } },
      trace.setSpan(remote, parent),
    );
    child.addEvent('first_token', { 'qwen.position': 3 });
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'cancelled by the client' });
    child.end();
    parent.setStatus({ code: SpanStatusCode.OK });
    parent.end();
    const client = tracer.startSpan('queue', { kind: SpanKind.CLIENT }, trace.setSpan(remote, parent));
    client.end();
    await provider.forceFlush();
  });

  afterAll(async () => {
    await provider?.shutdown();
    await Promise.all([json?.close(), proto?.close()]);
  });

  it('decodes the SDK exporters’ protobuf and JSON to the same spans', async () => {
    const [fromJson, fromProto] = await Promise.all([json.waitFor((s) => s.length === 3), proto.waitFor((s) => s.length === 3)]);
    expect(json.requests).toEqual({ 'application/json': 3, 'application/x-protobuf': 0 });
    expect(proto.requests).toEqual({ 'application/json': 0, 'application/x-protobuf': 3 });
    expect(json.rejected).toEqual([]);
    expect(proto.rejected).toEqual([]);
    expect(bySpanId(fromProto)).toEqual(bySpanId(fromJson));
  });

  it('gives the ids, parent links, names, kinds, times, attributes, events, status, scope and resource the SDK recorded', async () => {
    const spans = await proto.waitFor((s) => s.length === 3);
    const recorded = new Map(memory.getFinishedSpans().map((s: ReadableSpan) => [s.spanContext().spanId, s]));
    const [parent, child, client] = ['POST /v1/chat/completions', 'generate', 'queue'].map((n) => named(spans, n)) as [
      ReceivedSpan,
      ReceivedSpan,
      ReceivedSpan,
    ];

    expect(parent).toMatchObject({
      traceId: REMOTE_TRACE_ID,
      parentSpanId: REMOTE_SPAN_ID,
      name: 'POST /v1/chat/completions',
      kind: 'SERVER',
      status: { code: 'OK' },
      scope: 'qwen-serve-test',
      events: [],
    });
    expect(parent.attributes).toEqual(PARENT_ATTRIBUTES);
    // The provider's resource exactly (SDK 2 does not merge the default resource into a given one).
    for (const s of spans) expect(s.resource).toEqual({ 'service.name': 'otlp-receiver-test', 'service.version': '1.2.3' });

    expect(child).toMatchObject({
      traceId: REMOTE_TRACE_ID,
      parentSpanId: parent.spanId,
      name: 'generate',
      kind: 'INTERNAL',
      attributes: { 'gen_ai.usage.output_tokens': 7, 'qwen.text': 'héllo ✓' },
      status: { code: 'ERROR', message: 'cancelled by the client' },
    });
    expect(child.events).toEqual([{ name: 'first_token', timeNs: expect.any(BigInt), attributes: { 'qwen.position': 3 } }]);
    expect(client).toMatchObject({ parentSpanId: parent.spanId, name: 'queue', kind: 'CLIENT', status: { code: 'UNSET' } });
    expect(client.status.message).toBeUndefined();

    for (const s of spans) {
      expect(s.spanId).toMatch(/^[0-9a-f]{16}$/);
      const sdk = recorded.get(s.spanId);
      expect(sdk, s.name).toBeDefined();
      expect(s.startNs).toBe(hrToNs(sdk!.startTime));
      expect(s.endNs).toBe(hrToNs(sdk!.endTime));
      expect(s.endNs).toBeGreaterThanOrEqual(s.startNs);
      expect(child.events[0]!.timeNs).toBe(hrToNs(recorded.get(child.spanId)!.events[0]!.time));
    }
  });

  it('accepts gzip, enum names and string int64s in JSON, and answers with an empty response', async () => {
    const r = await startOtlpReceiver();
    try {
      const body = {
        resourceSpans: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: 'hand-written' } }] },
            scopeSpans: [
              {
                scope: { name: 'manual' },
                spans: [
                  {
                    traceId: 'ABCDEF0123456789ABCDEF0123456789',
                    spanId: '0123456789ABCDEF',
                    parentSpanId: '',
                    name: 'x',
                    kind: 'SPAN_KIND_CLIENT',
                    startTimeUnixNano: '1700000000000000001',
                    endTimeUnixNano: '1700000000000000002',
                    attributes: [
                      { key: 'n', value: { intValue: '-7' } },
                      { key: 'kv', value: { kvlistValue: { values: [{ key: 'a', value: { boolValue: true } }] } } },
                    ],
                    status: { code: 'STATUS_CODE_ERROR' },
                  },
                ],
              },
            ],
          },
        ],
      };
      const res = await fetch(`${r.url}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', 'content-encoding': 'gzip' },
        body: zlib.gzipSync(JSON.stringify(body)),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({});
      expect(r.spans).toEqual([
        {
          traceId: 'abcdef0123456789abcdef0123456789',
          spanId: '0123456789abcdef',
          name: 'x',
          kind: 'CLIENT',
          startNs: 1_700_000_000_000_000_001n,
          endNs: 1_700_000_000_000_000_002n,
          attributes: { n: -7, kv: { a: true } },
          events: [],
          status: { code: 'ERROR' },
          scope: 'manual',
          resource: { 'service.name': 'hand-written' },
        },
      ]);

      // An empty protobuf request is a valid ExportTraceServiceRequest; the response is empty too.
      const empty = await fetch(`${r.url}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf' },
        body: new Uint8Array(),
      });
      expect(empty.status).toBe(200);
      expect(empty.headers.get('content-type')).toBe('application/x-protobuf');
      expect((await empty.arrayBuffer()).byteLength).toBe(0);
      expect(r.requests).toEqual({ 'application/json': 1, 'application/x-protobuf': 1 });
    } finally {
      await r.close();
    }
  });

  it('rejects what is not an OTLP trace export, and waitFor times out naming what it saw', async () => {
    const r = await startOtlpReceiver();
    try {
      const post = (path: string, type: string, body: Uint8Array | string) =>
        fetch(`${r.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body }).then((res) => res.status);
      expect(await post('/v1/metrics', 'application/x-protobuf', new Uint8Array())).toBe(404);
      expect((await fetch(`${r.url}/v1/traces`)).status).toBe(405);
      expect(await post('/v1/traces', 'text/plain', 'hi')).toBe(415);
      // A length-delimited field 1 claiming 100 bytes with 1 present.
      expect(await post('/v1/traces', 'application/x-protobuf', new Uint8Array([0x0a, 100, 0]))).toBe(400);
      expect(await post('/v1/traces', 'application/json', '{not json')).toBe(400);
      expect(r.rejected.map((x) => x.status)).toEqual([404, 405, 415, 400, 400]);
      expect(r.requests).toEqual({ 'application/json': 0, 'application/x-protobuf': 0 });
      await expect(r.waitFor((s) => s.length > 0, 50)).rejects.toThrow(/within 50 ms \(spans received: none\)/);
    } finally {
      await r.close();
    }
  });
});
