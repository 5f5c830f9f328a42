/**
 * The express application: JSON body parsing with a size limit, the OpenAI routes, a 404 for
 * everything else, and one error handler that renders every failure in the OpenAI error shape.
 */
import express, { type Express } from 'express';
import { NotFoundError, ShuttingDownError } from '../errors.js';
import type { AppContext } from './context.js';
import { errorHandler, sendError } from './error-handler.js';
import { generationRoutes } from './routes/generation.js';
import { infoRoutes } from './routes/info.js';

export function createApp(ctx: AppContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req, res, next) => {
    if (ctx.draining && req.path !== '/health') {
      sendError(res, new ShuttingDownError());
      return;
    }
    const started = performance.now();
    res.on('finish', () => {
      ctx.log.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
    });
    next();
  });
  // type '*/*'-free: only bodies declared as JSON are parsed; anything else reaches the schema as {}.
  app.use(express.json({ limit: ctx.bodyLimitBytes, strict: false, type: ['application/json', 'application/*+json'] }));
  app.use(infoRoutes(ctx));
  app.use(generationRoutes(ctx));
  app.use((req) => {
    throw new NotFoundError(`Unknown route: ${req.method} ${req.path}`, 'unknown_route');
  });
  app.use(errorHandler(ctx.log));
  return app;
}
