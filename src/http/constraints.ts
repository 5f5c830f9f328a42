/**
 * What a request asks of the answer's shape (tools, response_format, logprobs), checked and turned into
 * the OutputConstraints a worker enforces. Cross-field rules live here: the zod schemas check each field.
 */
import { ApiError, InvalidRequestError } from '../errors.js';
import type { Feature } from '../metrics/definitions.js';
import type { GrammarSchema, OutputConstraints, ToolChoice, ToolFunction } from '../shared/protocol.js';
import { ANY_OBJECT, SchemaBudget, toGrammarSchema, type SchemaLimits } from '../structured/json-schema.js';
import type { ChatBody, CompletionBody } from './schemas.js';

type ResponseFormat = NonNullable<ChatBody['response_format']>;

/** The answer's JSON schema for response_format, or undefined for free text. */
function jsonSchema(format: ResponseFormat | null | undefined, budget: SchemaBudget): GrammarSchema | undefined {
  if (format == null || format.type === 'text') return undefined;
  if (format.type === 'json_object') return ANY_OBJECT;
  const { schema, strict } = format.json_schema;
  if (schema == null) return ANY_OBJECT;
  return toGrammarSchema(schema, 'response_format.json_schema.schema', strict === true, budget);
}

/** A function without parameters takes an empty object. */
const NO_PARAMETERS = { type: 'object', properties: {} };

function toolFunctions(tools: NonNullable<ChatBody['tools']>, budget: SchemaBudget): ToolFunction[] {
  const seen = new Set<string>();
  return tools.map(({ function: f }, i) => {
    const param = `tools.${i}.function`;
    if (seen.has(f.name)) throw new InvalidRequestError(`${param}.name: '${f.name}' is defined twice`, `${param}.name`, 'invalid_value');
    seen.add(f.name);
    const parameters = f.parameters ?? NO_PARAMETERS;
    const grammarSchema = toGrammarSchema(parameters, `${param}.parameters`, f.strict === true, budget);
    if (grammarSchema.type !== 'object') {
      throw new InvalidRequestError(`${param}.parameters: must be a schema of type 'object'`, `${param}.parameters`, 'invalid_value');
    }
    return { name: f.name, ...(f.description != null && { description: f.description }), parameters, grammarSchema };
  });
}

function toolChoice(body: ChatBody, functions: readonly ToolFunction[]): ToolChoice | 'none' {
  const choice = body.tool_choice ?? 'auto';
  if (choice === 'none') return 'none';
  if (choice === 'auto') return functions.length === 0 ? 'none' : { type: 'auto' };
  if (functions.length === 0)
    throw new InvalidRequestError(
      `tool_choice: '${typeof choice === 'string' ? choice : 'function'}' needs tools`,
      'tool_choice',
      'invalid_value',
    );
  if (choice === 'required') return { type: 'required' };
  const { name } = choice.function;
  if (!functions.some((f) => f.name === name)) {
    throw new InvalidRequestError(`tool_choice.function.name: no tool is named '${name}'`, 'tool_choice.function.name', 'invalid_value');
  }
  return { type: 'function', name };
}

/** `limits` bound the request's schemas together (tools and response_format). */
export function chatConstraints(body: ChatBody, limits: SchemaLimits): OutputConstraints {
  const budget = new SchemaBudget(limits);
  const functions = body.tools ? toolFunctions(body.tools, budget) : [];
  const choice = toolChoice(body, functions);
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw new InvalidRequestError('top_logprobs: requires logprobs to be true', 'top_logprobs', 'invalid_value');
  }
  return {
    json: jsonSchema(body.response_format, budget),
    // tool_choice none: the model is not shown the tools at all, so it cannot write a call.
    tools: choice === 'none' ? undefined : { functions, choice, parallel: body.parallel_tool_calls ?? true },
    logprobs: body.logprobs === true ? { top: body.top_logprobs ?? 0 } : undefined,
  };
}

export function completionConstraints(body: CompletionBody, limits: SchemaLimits): OutputConstraints {
  return {
    json: jsonSchema(body.response_format, new SchemaBudget(limits)),
    logprobs: body.logprobs != null ? { top: body.logprobs } : undefined,
  };
}

/** Features a request uses, for qwen_feature_requests_total (a fixed set of label values). */
export function featuresOf(c: OutputConstraints, responseFormat: ResponseFormat | null | undefined): Feature[] {
  const features: Feature[] = [];
  if (c.tools) features.push(c.tools.choice.type === 'auto' ? 'tools' : 'tools_forced');
  if (responseFormat?.type === 'json_object' || responseFormat?.type === 'json_schema') features.push(responseFormat.type);
  if (c.logprobs) features.push('logprobs');
  return features;
}

/**
 * Runs `build` with the chat field names, and renames the fields in its errors (param and message) for
 * another API's request shape (the Responses and Messages adapters build their constraints as chat's).
 */
export function withParamNames<T>(renames: readonly [RegExp, string][], build: () => T): T {
  try {
    return build();
  } catch (err) {
    if (!(err instanceof ApiError) || err.param === null) throw err;
    const param = renames.reduce((p, [re, to]) => p.replace(re, to), err.param);
    const message = err.message.startsWith(err.param) ? param + err.message.slice(err.param.length) : err.message;
    throw new ApiError(err.status, err.type, err.code, message, param);
  }
}
