/**
 * An OTLP/HTTP trace receiver for tests: what a collector, Jaeger or Tempo would receive from qwen-serve,
 * captured in-process so a test can assert on the spans. It accepts `POST /v1/traces` in both encodings
 * the OpenTelemetry exporters send (`http/json`: application/json; `http/protobuf`: application/x-protobuf),
 * gzip-compressed or not, and decodes both into one shape.
 *
 * Nothing installed decodes OTLP protobuf requests (@opentelemetry/otlp-transformer only serializes them,
 * and protobufjs is not a dependency), so the protobuf side is a minimal wire-format decoder for the fields
 * of opentelemetry-proto's trace/v1, common/v1 and resource/v1 messages that the tests read; any other field
 * is skipped by its wire type, as protobuf readers do.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';

/** An attribute's value; a nested object is an OTLP kvlist_value (resources and events may carry one). */
type AttributeValue = string | number | boolean | string[] | number[] | boolean[] | Attributes;
type Attributes = { [key: string]: AttributeValue };

/** OTLP's Span.SpanKind, by name (the wire carries the number: UNSPECIFIED 0 … CONSUMER 5). */
type SpanKindName = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
/** OTLP's Status.StatusCode, by name (UNSET 0, OK 1, ERROR 2). */
type StatusCodeName = 'UNSET' | 'OK' | 'ERROR';

interface ReceivedEvent {
  name: string;
  timeNs: bigint;
  attributes: Attributes;
}

export interface ReceivedSpan {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** 16 lowercase hex digits. */
  spanId: string;
  /** Absent on a root span. */
  parentSpanId?: string;
  name: string;
  kind: SpanKindName;
  startNs: bigint;
  endNs: bigint;
  attributes: Attributes;
  events: ReceivedEvent[];
  status: { code: StatusCodeName; message?: string };
  /** The instrumentation scope (the tracer's name) that made the span. */
  scope: string;
  /** The attributes of the resource the span was exported with (service.name, …). */
  resource: Attributes;
}

type OtlpEncoding = 'application/json' | 'application/x-protobuf';

export interface OtlpReceiver {
  /** http://127.0.0.1:PORT, without a path: the exporters' endpoint is `${url}/v1/traces`. */
  url: string;
  /** Every span received so far, in arrival order. */
  spans: ReceivedSpan[];
  /** Accepted export requests, by content type. */
  requests: Record<OtlpEncoding, number>;
  /** Requests answered with an error (wrong path, method, content type or a body that does not decode). */
  rejected: { status: number; reason: string }[];
  /** Resolves with the spans once `pred` holds for them (checked now and on each request); rejects after timeoutMs. */
  waitFor(pred: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

const SPAN_KINDS: SpanKindName[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS_CODES: StatusCodeName[] = ['UNSET', 'OK', 'ERROR'];

// ---------------------------------------------------------------------------------------------------
// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/)

type WireValue = { wire: 0; value: bigint } | { wire: 1; value: Buffer } | { wire: 2; value: Buffer } | { wire: 5; value: Buffer };

/** A message's fields in order, as (field number, wire value). Repeated fields appear once per element. */
function* fields(buf: Buffer): Generator<[number, WireValue]> {
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (pos >= buf.length) throw new Error('truncated varint');
      if (shift > 63n) throw new Error('varint longer than 10 bytes');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
  };
  const take = (n: number): Buffer => {
    if (pos + n > buf.length) throw new Error(`field runs past the end of its message (${n} bytes at ${pos} of ${buf.length})`);
    const out = buf.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  while (pos < buf.length) {
    const tag = varint();
    const no = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (no === 0) throw new Error('field number 0');
    if (wire === 0) yield [no, { wire, value: varint() }];
    else if (wire === 1) yield [no, { wire, value: take(8) }];
    else if (wire === 2) yield [no, { wire, value: take(Number(varint())) }];
    else if (wire === 5) yield [no, { wire, value: take(4) }];
    else throw new Error(`unsupported wire type ${wire} (field ${no})`);
  }
}

const bytesOf = (v: WireValue, what: string): Buffer => {
  if (v.wire !== 2) throw new Error(`${what}: expected a length-delimited field, got wire type ${v.wire}`);
  return v.value;
};
const varintOf = (v: WireValue, what: string): bigint => {
  if (v.wire !== 0) throw new Error(`${what}: expected a varint, got wire type ${v.wire}`);
  return v.value;
};
const fixed64Of = (v: WireValue, what: string): Buffer => {
  if (v.wire !== 1) throw new Error(`${what}: expected a 64-bit field, got wire type ${v.wire}`);
  return v.value;
};
const str = (v: WireValue, what: string) => bytesOf(v, what).toString('utf8');

/** common.v1.AnyValue: 1 string, 2 bool, 3 int64, 4 double, 5 ArrayValue (1: repeated AnyValue), 6 KeyValueList, 7 bytes. */
function pbAnyValue(buf: Buffer): unknown {
  let out: unknown;
  for (const [no, v] of fields(buf)) {
    if (no === 1) out = str(v, 'AnyValue.string_value');
    else if (no === 2) out = varintOf(v, 'AnyValue.bool_value') !== 0n;
    else if (no === 3) out = Number(BigInt.asIntN(64, varintOf(v, 'AnyValue.int_value')));
    else if (no === 4) out = fixed64Of(v, 'AnyValue.double_value').readDoubleLE(0);
    else if (no === 5) {
      const items: unknown[] = [];
      for (const [n, item] of fields(bytesOf(v, 'AnyValue.array_value')))
        if (n === 1) items.push(pbAnyValue(bytesOf(item, 'ArrayValue.values')));
      out = items;
    } else if (no === 6) {
      const kv: Attributes = {};
      for (const [n, item] of fields(bytesOf(v, 'AnyValue.kvlist_value')))
        if (n === 1) pbKeyValue(bytesOf(item, 'KeyValueList.values'), kv);
      out = kv;
    } else if (no === 7) out = Buffer.from(bytesOf(v, 'AnyValue.bytes_value')).toString('base64');
  }
  return out;
}

/** common.v1.KeyValue: 1 key, 2 value (AnyValue). */
function pbKeyValue(buf: Buffer, into: Attributes): void {
  let key = '';
  let value: unknown;
  for (const [no, v] of fields(buf)) {
    if (no === 1) key = str(v, 'KeyValue.key');
    else if (no === 2) value = pbAnyValue(bytesOf(v, 'KeyValue.value'));
  }
  into[key] = value as AttributeValue;
}

/** Repeated KeyValue under field `fieldNo` of a message. */
function pbAttributes(buf: Buffer, fieldNo: number): Attributes {
  const out: Attributes = {};
  for (const [no, v] of fields(buf)) if (no === fieldNo) pbKeyValue(bytesOf(v, 'attributes'), out);
  return out;
}

/** trace.v1.Span, its Event (1 time fixed64, 2 name, 3 attributes) and Status (2 message, 3 code). */
function pbSpan(buf: Buffer, scope: string, resource: Attributes): ReceivedSpan {
  const span: ReceivedSpan = {
    traceId: '',
    spanId: '',
    name: '',
    kind: 'UNSPECIFIED',
    startNs: 0n,
    endNs: 0n,
    attributes: {},
    events: [],
    status: { code: 'UNSET' },
    scope,
    resource,
  };
  for (const [no, v] of fields(buf)) {
    switch (no) {
      case 1:
        span.traceId = bytesOf(v, 'Span.trace_id').toString('hex');
        break;
      case 2:
        span.spanId = bytesOf(v, 'Span.span_id').toString('hex');
        break;
      case 4: {
        const parent = bytesOf(v, 'Span.parent_span_id');
        if (parent.length > 0) span.parentSpanId = parent.toString('hex');
        break;
      }
      case 5:
        span.name = str(v, 'Span.name');
        break;
      case 6:
        span.kind = kindName(Number(varintOf(v, 'Span.kind')));
        break;
      case 7:
        span.startNs = fixed64Of(v, 'Span.start_time_unix_nano').readBigUInt64LE(0);
        break;
      case 8:
        span.endNs = fixed64Of(v, 'Span.end_time_unix_nano').readBigUInt64LE(0);
        break;
      case 9:
        pbKeyValue(bytesOf(v, 'Span.attributes'), span.attributes);
        break;
      case 11: {
        const event: ReceivedEvent = { name: '', timeNs: 0n, attributes: {} };
        for (const [n, e] of fields(bytesOf(v, 'Span.events'))) {
          if (n === 1) event.timeNs = fixed64Of(e, 'Event.time_unix_nano').readBigUInt64LE(0);
          else if (n === 2) event.name = str(e, 'Event.name');
          else if (n === 3) pbKeyValue(bytesOf(e, 'Event.attributes'), event.attributes);
        }
        span.events.push(event);
        break;
      }
      case 15:
        for (const [n, s] of fields(bytesOf(v, 'Span.status'))) {
          if (n === 2) span.status.message = str(s, 'Status.message');
          else if (n === 3) span.status.code = statusName(Number(varintOf(s, 'Status.code')));
        }
        break;
    }
  }
  if (span.status.message === '') delete span.status.message;
  return span;
}

/**
 * collector.trace.v1.ExportTraceServiceRequest: 1 repeated ResourceSpans
 *   ResourceSpans: 1 Resource (1 repeated KeyValue attributes), 2 repeated ScopeSpans
 *   ScopeSpans: 1 InstrumentationScope (1 name), 2 repeated Span
 */
function decodeProtobufRequest(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const [no, rsField] of fields(body)) {
    if (no !== 1) continue;
    const rs = bytesOf(rsField, 'ResourceSpans');
    let resource: Attributes = {};
    for (const [n, v] of fields(rs)) if (n === 1) resource = pbAttributes(bytesOf(v, 'ResourceSpans.resource'), 1);
    for (const [n, v] of fields(rs)) {
      if (n !== 2) continue;
      const ss = bytesOf(v, 'ScopeSpans');
      let scope = '';
      for (const [m, s] of fields(ss)) {
        if (m === 1)
          for (const [k, sv] of fields(bytesOf(s, 'ScopeSpans.scope'))) if (k === 1) scope = str(sv, 'InstrumentationScope.name');
      }
      for (const [m, s] of fields(ss)) if (m === 2) out.push(pbSpan(bytesOf(s, 'ScopeSpans.spans'), scope, resource));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// OTLP JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): the protobuf JSON mapping
// with lowerCamelCase keys, trace and span ids as hex (not base64), enums as integers, and 64-bit integers
// as decimal strings or numbers.

interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number | string;
  arrayValue?: { values?: JsonAnyValue[] };
  kvlistValue?: { values?: JsonKeyValue[] };
  bytesValue?: string;
}
interface JsonKeyValue {
  key: string;
  value?: JsonAnyValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number | string;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: JsonKeyValue[];
  events?: { timeUnixNano: string | number; name: string; attributes?: JsonKeyValue[] }[];
  status?: { code?: number | string; message?: string };
}
interface JsonRequest {
  resourceSpans?: {
    resource?: { attributes?: JsonKeyValue[] };
    scopeSpans?: { scope?: { name?: string }; spans?: JsonSpan[] }[];
  }[];
}

function jsonAnyValue(v: JsonAnyValue | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return Number(v.doubleValue);
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(jsonAnyValue);
  if (v.kvlistValue !== undefined) return jsonAttributes(v.kvlistValue.values);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return undefined;
}

function jsonAttributes(kvs: JsonKeyValue[] | undefined): Attributes {
  const out: Attributes = {};
  for (const kv of kvs ?? []) out[kv.key] = jsonAnyValue(kv.value) as AttributeValue;
  return out;
}

/** An enum given as its number or, leniently, its proto name (SPAN_KIND_SERVER, STATUS_CODE_ERROR). */
function jsonEnum(v: number | string | undefined, prefix: string, names: readonly string[]): number {
  if (v === undefined) return 0;
  if (typeof v === 'number') return v;
  const byName = names.indexOf(v.replace(prefix, ''));
  return byName >= 0 ? byName : Number(v);
}

function decodeJsonRequest(body: Buffer): ReceivedSpan[] {
  const req = JSON.parse(body.toString('utf8')) as JsonRequest;
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = jsonAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope = ss.scope?.name ?? '';
      for (const s of ss.spans ?? []) {
        const span: ReceivedSpan = {
          traceId: s.traceId.toLowerCase(),
          spanId: s.spanId.toLowerCase(),
          name: s.name,
          kind: kindName(jsonEnum(s.kind, 'SPAN_KIND_', SPAN_KINDS)),
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: jsonAttributes(s.attributes),
          events: (s.events ?? []).map((e) => ({ name: e.name, timeNs: BigInt(e.timeUnixNano), attributes: jsonAttributes(e.attributes) })),
          status: { code: statusName(jsonEnum(s.status?.code, 'STATUS_CODE_', STATUS_CODES)) },
          scope,
          resource,
        };
        if (s.parentSpanId) span.parentSpanId = s.parentSpanId.toLowerCase();
        if (s.status?.message) span.status.message = s.status.message;
        out.push(span);
      }
    }
  }
  return out;
}

function kindName(n: number): SpanKindName {
  const name = SPAN_KINDS[n];
  if (!name) throw new Error(`unknown span kind ${n}`);
  return name;
}

function statusName(n: number): StatusCodeName {
  const name = STATUS_CODES[n];
  if (!name) throw new Error(`unknown status code ${n}`);
  return name;
}

// ---------------------------------------------------------------------------------------------------

/** Starts a receiver on 127.0.0.1 on a free port. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests: Record<OtlpEncoding, number> = { 'application/json': 0, 'application/x-protobuf': 0 };
  const rejected: { status: number; reason: string }[] = [];
  const waiters = new Set<() => void>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reject = (status: number, reason: string) => {
        rejected.push({ status, reason });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(reason);
      };
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/v1/traces') return reject(404, `no such path: ${req.url}`);
      if (req.method !== 'POST') return reject(405, `method ${req.method} not allowed`);
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json' && type !== 'application/x-protobuf') return reject(415, `unsupported content type: ${type}`);
      let received: ReceivedSpan[];
      try {
        let body = Buffer.concat(chunks);
        const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
        if (encoding === 'gzip') body = zlib.gunzipSync(body);
        else if (encoding !== 'identity') return reject(415, `unsupported content encoding: ${encoding}`);
        received = type === 'application/json' ? decodeJsonRequest(body) : decodeProtobufRequest(body);
      } catch (err) {
        return reject(400, `undecodable ${type} body: ${(err as Error).message}`);
      }
      requests[type]++;
      spans.push(...received);
      // An empty ExportTraceServiceResponse: full success.
      if (type === 'application/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      for (const wake of [...waiters]) wake();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    rejected,
    waitFor(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(spans)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(spans);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = spans.map((s) => s.name).join(', ') || 'none';
          reject(new Error(`OTLP receiver: condition not met within ${timeoutMs} ms (spans received: ${seen})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
