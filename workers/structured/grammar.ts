/**
 * The grammar that constrains one answer, composed from node-llama-cpp's JSON-schema grammars:
 * - response_format: the answer is one JSON value of the schema;
 * - tool_choice required / a named function: the answer is one or more calls in the template's syntax,
 *   each with one of the allowed names and arguments of that function's schema;
 * - tool_choice auto: the answer is free until the model writes the call trigger (`<tool_call>`); from
 *   there the rest of the call is constrained (callsAfter); with response_format too, the answer is
 *   either the JSON value or calls from the first token.
 * Grammars end with the value: after it the model can only end the answer.
 */
import type { GrammarSchema, ToolFunction } from '../../src/shared/protocol.js';
import { jsonValueRules, literal, seq } from './gbnf.js';
import type { ToolCallSyntax } from './tool-syntax.js';

/** node-llama-cpp's JSON-schema grammar text for a schema (llama.createGrammarForJsonSchema). */
export type SchemaGrammarText = (schema: GrammarSchema) => Promise<string>;

export interface ToolsPlan {
  syntax: ToolCallSyntax;
  functions: ToolFunction[];
  parallel: boolean;
}

/** Rules shared by every calls grammar: `calls` (one or more `call`s) and one rule per function. */
async function callRules(plan: ToolsPlan, schemaText: SchemaGrammarText): Promise<string[]> {
  const { syntax } = plan;
  const rules: string[] = [];
  const alternatives: string[] = [];
  for (const [i, fn] of plan.functions.entries()) {
    const prefix = `f${i}-`;
    rules.push(jsonValueRules(await schemaText(fn.grammarSchema), prefix));
    rules.push(`${prefix}call ::= ${seq(literal(fn.name), literal(syntax.paramsPrefix), `${prefix}root`, literal(syntax.suffix))}`);
    alternatives.push(`${prefix}call`);
  }
  rules.push(`function-call ::= ${alternatives.join(' | ')}`);
  rules.push(`call ::= ${seq(literal(syntax.prefix), 'function-call')}`);
  rules.push(plan.parallel ? `calls ::= call ( ${seq(literal(syntax.between), 'call')} )*` : 'calls ::= call');
  return rules;
}

/** The grammar of a whole answer, or undefined when it is free (plain text, or tools with auto). */
export async function answerGrammar(
  json: GrammarSchema | undefined,
  tools: (ToolsPlan & { forced: boolean }) | undefined,
  schemaText: SchemaGrammarText,
): Promise<string | undefined> {
  const rules: string[] = [];
  const roots: string[] = [];
  if (tools && (tools.forced || json)) {
    rules.push(...(await callRules(tools, schemaText)));
    roots.push('calls');
  }
  if (json && !tools?.forced) {
    rules.push(jsonValueRules(await schemaText(json), 'j-'));
    roots.push('j-root');
  }
  if (roots.length === 0) return undefined;
  return [`root ::= ${roots.join(' | ')}`, ...rules].join('\n');
}

/**
 * The grammar of the rest of an answer once the model wrote `written` (the trigger and whatever its token
 * carried after it) in a free answer; undefined when that is not the start of the call syntax.
 */
export async function callsAfter(written: string, plan: ToolsPlan, schemaText: SchemaGrammarText): Promise<string | undefined> {
  const { syntax } = plan;
  if (!syntax.prefix.startsWith(written)) return undefined;
  const more = plan.parallel ? `( ${seq(literal(syntax.between), 'call')} )*` : '';
  const root = seq(literal(syntax.prefix.slice(written.length)), 'function-call', more);
  return [`root ::= ${root}`, ...(await callRules(plan, schemaText))].join('\n');
}
