/**
 * Which served model a request is for: the route asks the registry for the model its body names (or the
 * default of the route's kind), and records it on the response, so that a refusal after that point is
 * counted under that model.
 */
import type { Request, Response } from 'express';
import type { ModelKind, ServedModel } from '../../models/served-model.js';
import type { AppContext } from '../context.js';
import { endpointLabel } from '../middleware/request-context.js';
import { ROUTES } from '../route-table.js';

/** The model a generation or embeddings request names, checked to be of the route's kind and able to serve. */
export function requestModel(ctx: AppContext, res: Response, name: string | null | undefined, kind: ModelKind): ServedModel {
  // Recorded before the checks: a wrong kind or a failed model is still a refusal of a served model's request.
  const known = name == null ? undefined : ctx.models.get(name);
  if (known) res.locals.model = known.id;
  const model = ctx.models.forRequest(name, kind);
  res.locals.model = model.id;
  return model;
}

/**
 * The `model` label of a refused request: the model it was routed to, else the served model its body names,
 * else (naming none) the default model of its route's kind; undefined for an id that is not served (a client's
 * typo must not become a label value).
 */
export function refusedModel(ctx: AppContext, req: Request, res: Response): string | undefined {
  if (typeof res.locals.model === 'string') return res.locals.model;
  const name: unknown = (req.body as { model?: unknown } | undefined)?.model;
  if (typeof name === 'string') return ctx.models.get(name)?.id;
  return ctx.models.defaultFor(endpointLabel(req) === ROUTES.embeddings.path ? 'embed' : 'generate').id;
}
