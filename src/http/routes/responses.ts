/** POST /v1/responses: the Responses API as a thin adapter over the chat path and the same dispatcher. */
import { Router } from 'express';
import type { AppContext } from '../context.js';
import { featuresOf } from '../constraints.js';
import { respond } from '../respond.js';
import { responsesConstraints, responsesInput, responsesSchema } from '../responses/request.js';
import { responsesRenderer } from '../responses/render.js';
import { parseBody, samplingParams } from '../schemas.js';
import { checkModel } from './check-model.js';
import { bodySize } from '../body-size.js';
import { prepareChoices } from '../prepare.js';
import { endpointLabel } from '../request-context.js';
import { ROUTES } from '../route-table.js';

export function responsesRoutes(ctx: AppContext): Router {
  const router = Router();
  const schema = responsesSchema(ctx.limits);

  router.post(ROUTES.responses.path, async (req, res) => {
    const body = parseBody(schema, req.body);
    const input = responsesInput(body, ctx.limits.maxJsonDepth);
    const constraints = responsesConstraints(body, ctx.schemaLimits);
    checkModel(ctx, body.model);
    const format = body.text?.format;
    ctx.metrics.features(
      endpointLabel(req),
      featuresOf(constraints, format?.type === 'json_schema' ? { type: 'json_schema', json_schema: { name: format.name } } : format),
    );
    const sampling = samplingParams(body, body.max_output_tokens ?? undefined, 'max_output_tokens');
    const { tasks, release } = await prepareChoices(ctx, {
      bodyBytes: bodySize(req),
      inputs: [input],
      n: 1,
      sampling,
      constraints,
      params: { prompt: 'input', shaping: constraints.tools ? 'tools' : 'text.format', logprobs: 'top_logprobs' },
    });
    respond(ctx.dispatcher, res, {
      tasks,
      release,
      renderer: responsesRenderer(ctx.modelId, body),
      stream: body.stream === true,
      onToolCalls: (count) => ctx.metrics.toolCalls(count),
    });
  });

  return router;
}
