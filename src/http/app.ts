/**
 * The express application. In order: the request's id, route and error shape, the Host allowlist, draining,
 * CORS, auth, a 405 for a known route asked with another method, JSON body parsing with a size and a depth
 * limit, the routes of each dialect (openai/, responses/, anthropic/) and the server's own (native/), a
 * 404 for everything else, and one error handler that writes every failure in its route's dialect.
 */
import express, { type Express } from 'express';
import { DASHBOARD_OPEN_ROUTES, dashboardRoutes } from '../dashboard/routes.js';
import { NotFoundError, ShuttingDownError } from '../errors.js';
import { metricsRouter } from '../metrics/exposition.js';
import { anthropicErrorBody } from './anthropic/errors.js';
import { anthropicRoutes } from './anthropic/routes.js';
import type { AppContext } from './context.js';
import { refusedModel } from './core/check-model.js';
import { bearerAuth } from './middleware/auth.js';
import { recordBodySize } from './middleware/body-size.js';
import { corsHandler } from './middleware/cors.js';
import { errorHandler, sendError } from './middleware/error-handler.js';
import { hostCheck } from './middleware/host-check.js';
import { bodyDepthCheck } from './middleware/json-depth.js';
import { methodCheck } from './middleware/method-check.js';
import { endpointLabel, loggerOf, requestContext, requestIdOf, routeOf, type ErrorBodies } from './middleware/request-context.js';
import { setTrace } from './core/trace.js';
import type { RequestTrace } from '../tracing/tracing.js';
import type { EndpointLabel } from '../metrics/definitions.js';
import { healthRoutes } from './native/health.js';
import { tokenizeRoutes } from './native/tokenize.js';
import { embeddingsRoutes } from './openai/embeddings.js';
import { modelsRoutes } from './openai/models.js';
import { openaiRoutes } from './openai/routes.js';
import { responsesRoutes } from './responses/routes.js';
import { API_ROUTES, DASHBOARD_ROUTES, ROUTES } from './route-table.js';

/** Errors not in OpenAI's shape, by dialect (the Responses API uses OpenAI's). */
const ERROR_BODIES: ErrorBodies = { anthropic: anthropicErrorBody };

/** Routes that answer while the server drains: probes and scrapes. */
const WHILE_DRAINING = new Set([ROUTES.health, ROUTES.metrics]);

export function createApp(ctx: AppContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const routes = ctx.history ? API_ROUTES : API_ROUTES.filter((r) => !DASHBOARD_ROUTES.includes(r));
  app.use(requestContext(routes, ctx.log, ERROR_BODIES));
  app.use((req, res, next) => {
    const started = performance.now();
    const endpoint = endpointLabel(req);
    const measured = endpoint === undefined ? undefined : ctx.metrics.httpRequest(req.method, endpoint);
    const trace = endpoint === undefined ? undefined : startTrace(ctx, req, endpoint);
    if (trace) setTrace(res, trace);
    // 'close' fires once per response, finished or aborted: the request is counted when it ends.
    res.once('close', () => {
      measured?.(trace?.sampled ? trace.traceId : undefined);
      trace?.end(res.statusCode, !res.writableFinished);
      loggerOf(req).debug(
        { method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - started) },
        'request',
      );
    });
    next();
  });
  app.use(hostCheck(ctx.hostPolicy, ctx.log));
  app.use((req, res, next) => {
    const route = routeOf(req);
    if (ctx.draining && !(route && WHILE_DRAINING.has(route))) return sendError(res, new ShuttingDownError());
    next();
  });
  // CORS before auth, so browsers' preflight requests (which carry no key) get their answer.
  if (ctx.corsOrigins) app.use(corsHandler(ctx.corsOrigins));
  app.use(
    bearerAuth({
      keys: ctx.apiKeys,
      protectMetrics: ctx.metricsAuth,
      openRoutes: ctx.history ? DASHBOARD_OPEN_ROUTES : [],
      onRejected: () => ctx.metrics.rejected('unauthorized'),
    }),
  );
  app.use(methodCheck());
  // Only bodies declared as JSON are parsed; any other body leaves req.body undefined (a 400 in the route).
  app.use(
    express.json({ limit: ctx.bodyLimitBytes, strict: false, type: ['application/json', 'application/*+json'], verify: recordBodySize }),
  );
  app.use(bodyDepthCheck(ctx.limits.maxJsonDepth));
  app.use(metricsRouter(ctx.collector));
  if (ctx.history) app.use(dashboardRoutes(ctx, ctx.history));
  app.use(healthRoutes(ctx));
  app.use(modelsRoutes(ctx));
  app.use(openaiRoutes(ctx));
  app.use(embeddingsRoutes(ctx));
  app.use(responsesRoutes(ctx));
  app.use(anthropicRoutes(ctx));
  app.use(tokenizeRoutes(ctx));
  app.use(notFound());
  app.use(errorHandler(ctx.metrics, (req, res) => refusedModel(ctx, req, res)));
  return app;
}

/** The last handler: a path no route matched. */
export function notFound(hint = ''): express.RequestHandler {
  return (req) => {
    throw new NotFoundError(`Unknown route: ${req.method} ${req.path.slice(0, 200)}${hint}`, 'unknown_route');
  };
}

/** The SERVER span of an API request (tracing on), named as OpenTelemetry's HTTP conventions say: method and route. */
function startTrace(ctx: AppContext, req: express.Request, endpoint: EndpointLabel): RequestTrace | undefined {
  return ctx.tracing?.startRequest(`${req.method} ${endpoint}`, req.headers, {
    'http.request.method': req.method,
    'http.route': endpoint,
    'qwen.request_id': requestIdOf(req),
  });
}
