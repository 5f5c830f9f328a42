/**
 * The express application: JSON body parsing with a size limit, the OpenAI routes, a 404 for
 * everything else, and one error handler that renders every failure in the OpenAI error shape.
 */
import cors from 'cors';
import express, { type Express } from 'express';
import { DASHBOARD_OPEN_PATHS, dashboardRoutes } from '../dashboard/routes.js';
import { NotFoundError, ShuttingDownError } from '../errors.js';
import { metricsRouter } from '../metrics/exposition.js';
import { bearerAuth } from './auth.js';
import type { AppContext } from './context.js';
import { errorHandler, sendError } from './error-handler.js';
import { generationRoutes } from './routes/generation.js';
import { infoRoutes } from './routes/info.js';
import { embeddingsRoutes } from './routes/embeddings.js';
import { messagesRoutes } from './routes/messages.js';
import { responsesRoutes } from './routes/responses.js';
import { tokenizeRoutes } from './routes/tokenize.js';

export function createApp(ctx: AppContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req, res, next) => {
    const started = performance.now();
    const measured = ctx.metrics.httpRequest(req.method, req.path);
    // 'close' fires once per response, finished or aborted: the request is counted when it ends.
    res.once('close', () => {
      measured?.();
      ctx.log.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
    });
    if (ctx.draining && req.path !== '/health' && req.path !== '/metrics') {
      sendError(res, new ShuttingDownError());
      return;
    }
    next();
  });
  // CORS before auth, so browsers' preflight requests (which carry no key) get their answer.
  if (ctx.corsOrigins) app.use(cors({ origin: ctx.corsOrigins === '*' ? '*' : ctx.corsOrigins, maxAge: 600 }));
  app.use(
    bearerAuth({
      keys: ctx.apiKeys,
      protectMetrics: ctx.metricsAuth,
      openPaths: ctx.history ? DASHBOARD_OPEN_PATHS : [],
      onRejected: () => ctx.metrics.rejected('unauthorized'),
    }),
  );
  // Only bodies declared as JSON are parsed; any other body leaves req.body undefined (a 400 in the route).
  app.use(express.json({ limit: ctx.bodyLimitBytes, strict: false, type: ['application/json', 'application/*+json'] }));
  app.use(metricsRouter(ctx.collector));
  if (ctx.history) app.use(dashboardRoutes(ctx, ctx.history));
  app.use(infoRoutes(ctx));
  app.use(generationRoutes(ctx));
  app.use(tokenizeRoutes(ctx));
  app.use(responsesRoutes(ctx));
  app.use(messagesRoutes(ctx));
  app.use(embeddingsRoutes(ctx));
  app.use((req) => {
    throw new NotFoundError(`Unknown route: ${req.method} ${req.path}`, 'unknown_route');
  });
  app.use(errorHandler(ctx.log, ctx.metrics));
  return app;
}
