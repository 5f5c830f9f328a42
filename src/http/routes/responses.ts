/** POST /v1/responses: the Responses API as a thin adapter over the chat path and the same dispatcher. */
import { Router } from 'express';
import type { AppContext } from '../context.js';
import { featuresOf } from '../constraints.js';
import { respond } from '../respond.js';
import { endpointLabel } from '../request-context.js';
import { ROUTES } from '../route-table.js';
import { responsesConstraints, responsesInput, responsesSchema } from '../responses/request.js';
import { responsesRenderer } from '../responses/render.js';
import { parseBody, samplingParams } from '../schemas.js';
import { checkModel } from './check-model.js';
import { choiceTasks } from './generation.js';

export function responsesRoutes(ctx: AppContext): Router {
  const router = Router();
  const schema = responsesSchema(ctx.limits);

  router.post(ROUTES.responses.path, (req, res) => {
    const body = parseBody(schema, req.body);
    const input = responsesInput(body, ctx.limits.maxJsonDepth);
    const constraints = responsesConstraints(body);
    checkModel(ctx, body.model);
    const format = body.text?.format;
    ctx.metrics.features(
      endpointLabel(req),
      featuresOf(constraints, format?.type === 'json_schema' ? { type: 'json_schema', json_schema: { name: format.name } } : format),
    );
    const sampling = samplingParams(body, body.max_output_tokens ?? undefined, 'max_output_tokens');
    respond(ctx.dispatcher, res, {
      tasks: choiceTasks([input], 1, sampling, constraints),
      renderer: responsesRenderer(ctx.modelId, body),
      stream: body.stream === true,
      onToolCalls: (count) => ctx.metrics.toolCalls(count),
    });
  });

  return router;
}
