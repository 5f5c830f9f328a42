/**
 * Turns a request's OutputConstraints into what generation needs: the grammar to sample with from the
 * first token, the one to switch to when a free answer starts a tool call, and the parser that splits the
 * answer into text and calls. Grammars are compiled before the request starts, so a schema that does not
 * compile is a plain 400.
 */
import { LlamaGrammarEvaluationState, type LlamaModel } from 'node-llama-cpp';
import { InvalidSchemaError } from '../../src/errors.js';
import type { GrammarSchema, OutputConstraints } from '../../src/shared/protocol.js';
import { GenerationError } from '../generation-error.js';
import { nativeGrammarState, type NativeGrammarState } from '../native.js';
import { answerGrammar, callsAfter, type SchemaGrammarText, type ToolsPlan } from './grammar.js';
import { ToolCallParser } from './tool-parser.js';
import type { ToolCallSyntax } from './tool-syntax.js';

export interface Shaping {
  /** Applied from the first token. */
  grammar?: NativeGrammarState;
  /** Splits tool calls from text (requests with tools). */
  parser?: ToolCallParser;
  /** For a free answer: the grammar of the rest of a call, once the parser saw its trigger. */
  afterTrigger?: NativeGrammarState;
  /** The answer is JSON (response_format): stop strings are not applied to it, they would break it. */
  json: boolean;
}

export async function prepareShaping(model: LlamaModel, syntax: ToolCallSyntax | undefined, c: OutputConstraints): Promise<Shaping> {
  const llama = model.llama;
  const schemaText: SchemaGrammarText = async (schema: GrammarSchema) => (await llama.createGrammarForJsonSchema(schema as never)).grammar;
  const compile = async (param: string, make: () => Promise<string | undefined>): Promise<NativeGrammarState | undefined> => {
    try {
      const gbnf = await make();
      if (gbnf === undefined) return undefined;
      const grammar = await llama.createGrammar({ grammar: gbnf });
      return nativeGrammarState(new LlamaGrammarEvaluationState({ model, grammar }));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw schemaError(`${param}: the schema could not be compiled to a grammar (${why})`, param);
    }
  };
  if (c.tools && !syntax) throw schemaError("This model's chat template has no tool-call syntax that qwen-serve can enforce.", 'tools');
  const tools = c.tools && syntax ? { syntax, functions: c.tools.functions, parallel: c.tools.parallel } : undefined;
  const choice = c.tools?.choice;
  const forced = choice?.type === 'required' || choice?.type === 'function';
  const plan: ToolsPlan | undefined =
    tools && choice?.type === 'function' ? { ...tools, functions: tools.functions.filter((f) => f.name === choice.name) } : tools;
  const param = c.tools ? 'tools' : 'response_format';
  const grammar = await compile(param, () => answerGrammar(c.json, plan && { ...plan, forced }, schemaText));
  const afterTrigger =
    plan && !forced && !c.json ? await compile(param, () => callsAfter(plan.syntax.trigger, plan, schemaText)) : undefined;
  return {
    grammar,
    afterTrigger,
    parser: plan ? new ToolCallParser(plan.syntax, forced) : undefined,
    json: c.json !== undefined,
  };
}

const schemaError = (message: string, param: string) => new GenerationError(new InvalidSchemaError(message, param).toPayload());
