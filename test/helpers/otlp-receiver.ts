/**
 * An OTLP/HTTP trace receiver for tests: accepts POST /v1/traces in both encodings the exporters send
 * (application/json and application/x-protobuf) and decodes them into one simple span shape. The protobuf side is
 * a small wire-format reader for the fields of opentelemetry-proto's trace, common and resource messages that the
 * tests look at (field numbers from those .proto files).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { until } from './until.js';

type Value = string | number | boolean | Value[];

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** undefined for a root span. */
  parentSpanId?: string;
  name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, Value>;
  /** OTLP's StatusCode: 0 unset, 1 ok, 2 error. */
  status: { code: number; message?: string };
  resource: Record<string, Value>;
}

export interface OtlpReceiver {
  /** The base URL: exporters post to `${url}/v1/traces`. */
  url: string;
  spans: ReceivedSpan[];
  requests: { json: number; protobuf: number };
  /** Resolves with every span once `ok` holds for them. */
  waitFor(ok: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests = { json: 0, protobuf: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      const json = (req.headers['content-type'] ?? '').includes('json');
      try {
        spans.push(...(json ? fromJson(JSON.parse(body.toString('utf8'))) : fromProtobuf(body)));
        requests[json ? 'json' : 'protobuf']++;
        res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : '');
      } catch (err) {
        res.writeHead(400).end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    spans,
    requests,
    waitFor: (ok, timeoutMs = 10_000) => until('the expected spans', () => (ok(spans) ? spans : undefined), timeoutMs, 50),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

// ---- OTLP JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) ----

interface JsonAny {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: JsonAny[] };
}
interface JsonKeyValue {
  key: string;
  value: JsonAny;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: JsonKeyValue[];
  status?: { code?: number; message?: string };
}
interface JsonRequest {
  resourceSpans?: { resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: { spans?: JsonSpan[] }[] }[];
}

function jsonValue(v: JsonAny): Value {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  return (v.arrayValue?.values ?? []).map(jsonValue);
}

const jsonAttributes = (kvs: JsonKeyValue[] = []) => Object.fromEntries(kvs.map((kv) => [kv.key, jsonValue(kv.value)]));

function fromJson(body: JsonRequest): ReceivedSpan[] {
  return (body.resourceSpans ?? []).flatMap((rs) => {
    const resource = jsonAttributes(rs.resource?.attributes);
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        traceId: s.traceId.toLowerCase(),
        spanId: s.spanId.toLowerCase(),
        parentSpanId: s.parentSpanId ? s.parentSpanId.toLowerCase() : undefined,
        name: s.name,
        kind: s.kind ?? 0,
        startNs: BigInt(s.startTimeUnixNano),
        endNs: BigInt(s.endTimeUnixNano),
        attributes: jsonAttributes(s.attributes),
        status: { code: s.status?.code ?? 0, ...(s.status?.message ? { message: s.status.message } : {}) },
        resource,
      })),
    );
  });
}

// ---- OTLP protobuf: the wire format (varint, 64-bit, length-delimited, 32-bit) ----

type Field = { no: number; wire: number; varint?: bigint; bytes?: Buffer; fixed?: Buffer };

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = buf[at++];
      if (byte === undefined) throw new Error('truncated varint');
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ no, wire, varint: varint() });
    else if (wire === 1) out.push({ no, wire, fixed: buf.subarray(at, (at += 8)) });
    else if (wire === 2) {
      const len = Number(varint());
      out.push({ no, wire, bytes: buf.subarray(at, (at += len)) });
    } else if (wire === 5) out.push({ no, wire, fixed: buf.subarray(at, (at += 4)) });
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const all = (fs: Field[], no: number) => fs.filter((f) => f.no === no);
const one = (fs: Field[], no: number) => fs.find((f) => f.no === no);
const text = (f: Field | undefined) => f?.bytes?.toString('utf8') ?? '';
const hex = (f: Field | undefined) => f?.bytes?.toString('hex') ?? '';

/** AnyValue: 1 string, 2 bool, 3 int64, 4 double, 5 ArrayValue (1: repeated AnyValue). */
function pbValue(buf: Buffer): Value {
  const [f] = fields(buf);
  if (!f) return '';
  if (f.no === 1) return text(f);
  if (f.no === 2) return f.varint === 1n;
  if (f.no === 3) return Number(BigInt.asIntN(64, f.varint!));
  if (f.no === 4) return f.fixed!.readDoubleLE(0);
  if (f.no === 5) return all(fields(f.bytes!), 1).map((v) => pbValue(v.bytes!));
  throw new Error(`unsupported AnyValue field ${f.no}`);
}

/** KeyValue: 1 key, 2 value (AnyValue). */
function pbAttributes(kvs: Field[]): Record<string, Value> {
  return Object.fromEntries(
    kvs.map((kv) => {
      const f = fields(kv.bytes!);
      const value = one(f, 2);
      return [text(one(f, 1)), value ? pbValue(value.bytes!) : ''];
    }),
  );
}

/**
 * ExportTraceServiceRequest: 1 ResourceSpans (1 Resource (1 attributes), 2 ScopeSpans (2 Span)). Span: 1 trace_id,
 * 2 span_id, 4 parent_span_id, 5 name, 6 kind, 7 start_time_unix_nano, 8 end_time_unix_nano, 9 attributes,
 * 15 status (2 message, 3 code).
 */
function fromProtobuf(body: Buffer): ReceivedSpan[] {
  return all(fields(body), 1).flatMap((rsField) => {
    const rs = fields(rsField.bytes!);
    const resourceField = one(rs, 1);
    const resource = resourceField ? pbAttributes(all(fields(resourceField.bytes!), 1)) : {};
    return all(rs, 2).flatMap((ssField) =>
      all(fields(ssField.bytes!), 2).map((spanField): ReceivedSpan => {
        const s = fields(spanField.bytes!);
        const statusField = one(s, 15);
        const status = statusField ? fields(statusField.bytes!) : [];
        const message = text(one(status, 2));
        const parent = hex(one(s, 4));
        return {
          traceId: hex(one(s, 1)),
          spanId: hex(one(s, 2)),
          parentSpanId: parent === '' ? undefined : parent,
          name: text(one(s, 5)),
          kind: Number(one(s, 6)?.varint ?? 0n),
          startNs: one(s, 7)?.fixed?.readBigUInt64LE(0) ?? 0n,
          endNs: one(s, 8)?.fixed?.readBigUInt64LE(0) ?? 0n,
          attributes: pbAttributes(all(s, 9)),
          status: { code: Number(one(status, 3)?.varint ?? 0n), ...(message ? { message } : {}) },
          resource,
        };
      }),
    );
  });
}
