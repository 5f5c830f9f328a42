import type { Logger } from 'pino';
import type { MetricsHistory } from '../dashboard/history.js';
import type { MetricsCollector } from '../engine/metrics-collector.js';
import type { MainMetrics } from '../metrics/main-metrics.js';
import type { HostPolicy } from './middleware/host-check.js';
import type { InputLimits } from './core/validation.js';
import type { ModelRegistry } from '../models/registry.js';
import type { Tracing } from '../tracing/tracing.js';
import type { SchemaLimits } from '../structured/json-schema.js';

/** What the routes need from the rest of the server. */
export interface AppContext {
  /** The served models: which one a request names, and each one's engines, queue and tokenizer threads. */
  models: ModelRegistry;
  bodyLimitBytes: number;
  limits: InputLimits;
  /** Accepted API keys; empty = no auth. */
  apiKeys: string[];
  metricsAuth: boolean;
  corsOrigins?: string[] | '*';
  /** The Host header values this port answers (--allowed-hosts, decided by the address it listens on). */
  hostPolicy: HostPolicy;
  /** Bounds on each request's schemas. */
  schemaLimits: SchemaLimits;
  log: Logger;
  metrics: MainMetrics;
  collector: MetricsCollector;
  /** The dashboard's sampled history; absent with --no-dashboard (and then /dashboard* are 404). */
  history?: MetricsHistory;
  /** OpenTelemetry tracing; absent when off (the default). */
  tracing?: Tracing;
  /** Set on SIGTERM/SIGINT: new requests get 503 with Connection: close. */
  draining: boolean;
}
