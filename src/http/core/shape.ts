/**
 * What a request asks of the answer's shape (tools, a JSON format, logprobs), in one neutral form that every
 * dialect maps its own fields into, each declaration carrying the request path it came from. Cross-field
 * rules are checked here once, and their errors name the dialect's own fields (`tools.0.input_schema`,
 * `text.format.schema`): the per-field rules are each dialect's zod schemas.
 */
import type { Feature } from '../../metrics/definitions.js';
import type { GrammarSchema, OutputConstraints, ToolChoice, ToolFunction } from '../../shared/protocol.js';
import { ANY_OBJECT, SchemaBudget, toGrammarSchema, type SchemaLimits } from '../../structured/json-schema.js';
import { invalidValue } from './validation.js';

/** A function tool as the client declared it. */
interface ToolDeclaration {
  name: string;
  description?: string | null;
  parameters?: Record<string, unknown> | null;
  strict?: boolean | null;
  /** Request paths of its name and of its parameters' schema (`tools.0.function.name`, `tools.0.input_schema`). */
  nameParam: string;
  parametersParam: string;
}

/**
 * Which tools the model may or must call: `param` is the choice's field, `as` the value in the dialect's
 * own words (Anthropic's `any`), and for one named function `nameParam` where its name is
 * (`tool_choice.function.name`).
 */
export type ToolChoiceDeclaration =
  | { type: 'none'; param: string; as: string }
  | { type: 'auto'; param: string; as: string }
  | { type: 'required'; param: string; as: string }
  | { type: 'function'; param: string; as: string; name: string; nameParam: string };

/** Free text, any JSON object, or JSON matching a schema. */
export type FormatDeclaration = { type: 'text'; param: string } | { type: 'json_object'; param: string } | JsonSchemaFormat;

interface JsonSchemaFormat {
  type: 'json_schema';
  schema?: Record<string, unknown> | null;
  strict?: boolean | null;
  /** The format field (`response_format`) and its schema's path (`response_format.json_schema.schema`). */
  param: string;
  schemaParam: string;
}

export interface ShapeRequest {
  tools?: readonly ToolDeclaration[];
  /** The tools' field, named when the tools shape the answer. */
  toolsParam?: string;
  toolChoice?: ToolChoiceDeclaration;
  parallelToolCalls?: boolean | null;
  format?: FormatDeclaration | null;
  /** Log probabilities of each token and of `top` alternatives. */
  logprobs?: { top: number };
}

/** A function without parameters takes an empty object. */
const NO_PARAMETERS = { type: 'object', properties: {} };

function jsonSchema(format: FormatDeclaration | null | undefined, budget: SchemaBudget): GrammarSchema | undefined {
  if (format == null || format.type === 'text') return undefined;
  if (format.type === 'json_object' || format.schema == null) return ANY_OBJECT;
  return toGrammarSchema(format.schema, format.schemaParam, format.strict === true, budget);
}

function toolFunctions(tools: readonly ToolDeclaration[], budget: SchemaBudget): ToolFunction[] {
  const seen = new Set<string>();
  return tools.map((t) => {
    if (seen.has(t.name)) throw invalidValue(t.nameParam, `'${t.name}' is defined twice`);
    seen.add(t.name);
    const parameters = t.parameters ?? NO_PARAMETERS;
    const grammarSchema = toGrammarSchema(parameters, t.parametersParam, t.strict === true, budget);
    if (grammarSchema.type !== 'object') throw invalidValue(t.parametersParam, "must be a schema of type 'object'");
    return { name: t.name, ...(t.description != null && { description: t.description }), parameters, grammarSchema };
  });
}

function toolChoice(choice: ToolChoiceDeclaration | undefined, functions: readonly ToolFunction[]): ToolChoice | 'none' {
  if (choice === undefined || choice.type === 'auto') return functions.length === 0 ? 'none' : { type: 'auto' };
  if (choice.type === 'none') return 'none';
  if (functions.length === 0) throw invalidValue(choice.param, `'${choice.as}' needs tools`);
  if (choice.type === 'required') return { type: 'required' };
  if (!functions.some((f) => f.name === choice.name)) throw invalidValue(choice.nameParam, `no tool is named '${choice.name}'`);
  return { type: 'function', name: choice.name };
}

/** `limits` bound the request's schemas together (tools and the format). */
export function outputConstraints(shape: ShapeRequest, limits: SchemaLimits): OutputConstraints {
  const budget = new SchemaBudget(limits);
  const functions = shape.tools ? toolFunctions(shape.tools, budget) : [];
  const choice = toolChoice(shape.toolChoice, functions);
  return {
    json: jsonSchema(shape.format, budget),
    // tool_choice none: the model is not shown the tools at all, so it cannot write a call.
    tools: choice === 'none' ? undefined : { functions, choice, parallel: shape.parallelToolCalls ?? true },
    logprobs: shape.logprobs,
  };
}

/** The field whose schemas shape the answer (named by errors about its grammar): the tools, else the format. */
export function shapingParam(c: OutputConstraints, shape: ShapeRequest): string | undefined {
  return c.tools ? shape.toolsParam : shape.format?.param;
}

/** Features a request uses, for qwen_feature_requests_total (a fixed set of label values). */
export function featuresOf(c: OutputConstraints, shape: ShapeRequest): Feature[] {
  const features: Feature[] = [];
  if (c.tools) features.push(c.tools.choice.type === 'auto' ? 'tools' : 'tools_forced');
  const format = shape.format?.type;
  if (format === 'json_object' || format === 'json_schema') features.push(format);
  if (c.logprobs) features.push('logprobs');
  return features;
}
