/**
 * OpenTelemetry tracing of API requests, off by default. When off, nothing here is loaded (startTracing is
 * the only entry, and the server calls it only with a TracingConfig) and every call site holds `undefined`:
 * a request pays one property check. When on, each API request is a SERVER span that continues a client's
 * W3C traceparent; its child spans (prepare, then per choice queue, grammar, prompt, generate, tool_call) are
 * built on the main thread from the times the workers measured and report with a traced task's final message
 * (TaskTimings), so no context has to cross the worker and engine-process boundaries.
 */
import type { Logger } from 'pino';
import type { TracingConfig } from '../config/config.js';

type AttributeValue = string | number | boolean | string[] | number[];
type Attributes = Record<string, AttributeValue | undefined>;

/** A finished child span: epoch-millisecond times; `error` marks it failed; `events` are points in it (decode steps). */
interface ChildSpan {
  name: string;
  startMs: number;
  endMs: number;
  attributes?: Attributes;
  error?: string;
  events?: { name: string; timeMs: number; attributes?: Attributes }[];
}

/** One traced API request: its server span, and the children it records. */
export interface RequestTrace {
  /** 32 hex digits, for exemplars and logs. */
  readonly traceId: string;
  /** Whether the span is recorded and exported (the sampler kept it). */
  readonly sampled: boolean;
  /** Whether text may be recorded (--trace-content). */
  readonly recordContent: boolean;
  setAttributes(attributes: Attributes): void;
  child(span: ChildSpan): void;
  /** Ends the server span: the response's status, or `aborted` when the client left before it ended. */
  end(status: number, aborted: boolean): void;
}

export interface Tracing {
  /** The SERVER span of one request, continuing `headers.traceparent` when it is valid. */
  startRequest(name: string, headers: Record<string, string | string[] | undefined>, attributes: Attributes): RequestTrace;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

/** Loads the SDK and starts exporting; only called when tracing is on. */
export async function startTracing(config: TracingConfig, version: string, log: Logger): Promise<Tracing> {
  const [api, core, resources, base, node, exporterModule] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/sdk-trace-node'),
    config.protocol === 'http/json'
      ? import('@opentelemetry/exporter-trace-otlp-http')
      : import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  const ratio = new base.TraceIdRatioBasedSampler(config.ratio);
  const samplers = {
    always_on: () => new base.AlwaysOnSampler(),
    always_off: () => new base.AlwaysOffSampler(),
    traceidratio: () => ratio,
    parentbased_always_on: () => new base.ParentBasedSampler({ root: new base.AlwaysOnSampler() }),
    parentbased_always_off: () => new base.ParentBasedSampler({ root: new base.AlwaysOffSampler() }),
    parentbased_traceidratio: () => new base.ParentBasedSampler({ root: ratio }),
  };
  const exporter = new exporterModule.OTLPTraceExporter({ url: config.url, headers: config.headers });
  const provider = new node.NodeTracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': config.serviceName, 'service.version': version }),
    sampler: samplers[config.sampler](),
    spanProcessors: [new base.BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 })],
  });
  // Export failures are reported through the API's diagnostic logger: into the server's log, rate-limited by level.
  api.diag.setLogger(
    {
      error: (message: string) => log.warn({ message }, 'tracing'),
      warn: (message: string) => log.warn({ message }, 'tracing'),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    api.DiagLogLevel.WARN,
  );
  const tracer = provider.getTracer('qwen-serve', version);
  const propagator = new core.W3CTraceContextPropagator();
  const clean = (attributes: Attributes) =>
    Object.fromEntries(Object.entries(attributes).filter(([, v]) => v !== undefined)) as Record<string, AttributeValue>;
  log.info({ url: config.url, protocol: config.protocol, sampler: config.sampler, ratio: config.ratio }, 'tracing on');

  return {
    startRequest(name, headers, attributes) {
      const parent = propagator.extract(api.ROOT_CONTEXT, headers, api.defaultTextMapGetter);
      const span = tracer.startSpan(name, { kind: api.SpanKind.SERVER, attributes: clean(attributes) }, parent);
      const context = api.trace.setSpan(parent, span);
      const { traceId, traceFlags } = span.spanContext();
      const sampled = span.isRecording() && (traceFlags & api.TraceFlags.SAMPLED) !== 0;
      return {
        traceId,
        sampled,
        recordContent: config.recordContent,
        setAttributes: (a) => {
          if (sampled) span.setAttributes(clean(a));
        },
        child: ({ name: childName, startMs, endMs, attributes: a = {}, error, events = [] }) => {
          if (!sampled) return;
          const child = tracer.startSpan(childName, { kind: api.SpanKind.INTERNAL, startTime: startMs, attributes: clean(a) }, context);
          for (const e of events) child.addEvent(e.name, clean(e.attributes ?? {}), e.timeMs);
          if (error !== undefined) child.setStatus({ code: api.SpanStatusCode.ERROR, message: error });
          child.end(Math.max(startMs, endMs));
        },
        end: (status, aborted) => {
          span.setAttribute('http.response.status_code', status);
          // OpenTelemetry's HTTP conventions: a server span fails on 5xx; a client that left is an error of its own.
          if (aborted) span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'client closed the connection' });
          else if (status >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR });
          span.end();
        },
      };
    },
    shutdown: () => provider.shutdown(),
  };
}
