import type { Logger } from 'pino';
import type { MetricsHistory } from '../dashboard/history.js';
import type { MetricsCollector } from '../engine/metrics-collector.js';
import type { MainMetrics } from '../metrics/main-metrics.js';
import type { HostPolicy } from './middleware/host-check.js';
import type { InputLimits } from './core/validation.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { Engine } from '../engine/engine.js';
import type { Preparer } from '../prepare/preparer.js';
import type { SchemaLimits } from '../structured/json-schema.js';
import type { BudgetLimits } from './core/budget.js';

/** What the routes need from the rest of the server. */
export interface AppContext {
  modelId: string;
  /** Unix seconds when the model was loaded, for /v1/models `created`. */
  createdAt: number;
  bodyLimitBytes: number;
  limits: InputLimits;
  /** Tokens per sequence (--context-size): the longest prompt + answer. */
  contextSize: number;
  /** Accepted API keys; empty = no auth. */
  apiKeys: string[];
  metricsAuth: boolean;
  corsOrigins?: string[] | '*';
  /** The Host header values this port answers (--allowed-hosts, decided by the address it listens on). */
  hostPolicy: HostPolicy;
  dispatcher: Dispatcher;
  /** The tokenizer workers: prompts, chat templates, grammars, /tokenize (never on the main thread). */
  prepare: Preparer;
  /** The context and each request's budgets (--context-size, --max-request-tokens, --max-request-logprobs). */
  budgets: BudgetLimits;
  /** Bounds on each request's schemas. */
  schemaLimits: SchemaLimits;
  engines: Engine[];
  log: Logger;
  metrics: MainMetrics;
  collector: MetricsCollector;
  /** The dashboard's sampled history; absent with --no-dashboard (and then /dashboard* are 404). */
  history?: MetricsHistory;
  /** Set on SIGTERM/SIGINT: new requests get 503 with Connection: close. */
  draining: boolean;
}
