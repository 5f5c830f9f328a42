/**
 * Composes a request's grammars (GBNF text) in a tokenizer worker, from its response_format schema and
 * tools: node-llama-cpp's JSON-schema grammars (enums as tries, enum-trie.ts) joined by grammar.ts. The
 * model worker only compiles the text, so nothing that grows with the schemas runs in its decode loop.
 *
 * Agents send the same tools every turn: results are cached by what they depend on (the schemas, the tool
 * choice, parallelism), so a repeated tool set costs one lookup.
 */
import { randomBytes } from 'node:crypto';
import type { Llama } from 'node-llama-cpp';
import { GrammarTooLargeError, InternalError, InvalidSchemaError } from '../../src/errors.js';
import { LruCache } from '../../src/shared/lru.js';
import type { ShapingRequest } from '../../src/shared/prepare-protocol.js';
import type { GrammarSchema, Shaping } from '../../src/shared/protocol.js';
import { withEnumTries } from './enum-trie.js';
import { answerGrammar, callsAfter, type SchemaGrammarText, type ToolsPlan } from './grammar.js';
import type { ToolCallSyntax } from './tool-syntax.js';

/** A fault of ours in composing (not the client's schema): a 500, and the grammar's head for the log. */
export class CompositionError extends InternalError {
  constructor(
    message: string,
    readonly grammarHead: string,
  ) {
    super(message);
  }
}

const HEAD_CHARS = 500;

export class GrammarComposer {
  private readonly cache: LruCache<string, Shaping>;
  /** Placeholders for enums are unguessable, so no client string can collide with one. */
  private readonly nonce = `qwen-enum-${randomBytes(6).toString('hex')}`;

  constructor(
    private readonly llama: Llama,
    private readonly syntax: ToolCallSyntax | undefined,
    private readonly limits: { maxRules: number; cacheSize: number },
  ) {
    this.cache = new LruCache(limits.cacheSize);
  }

  async compose(req: ShapingRequest): Promise<{ shaping: Shaping; cached: boolean }> {
    const key = JSON.stringify([req.json ?? null, req.tools ?? null]);
    const hit = this.cache.get(key);
    if (hit) return { shaping: hit, cached: true };
    const shaping = await this.build(req);
    this.cache.set(key, shaping);
    return { shaping, cached: false };
  }

  private async build(req: ShapingRequest): Promise<Shaping> {
    const { json, tools: t, param } = req;
    if (t && !this.syntax)
      throw new InvalidSchemaError("This model's chat template has no tool-call syntax that qwen-serve can enforce.", 'tools');
    const tools = t && this.syntax ? { syntax: this.syntax, functions: t.functions, parallel: t.parallel } : undefined;
    const choice = t?.choice;
    const forced = choice?.type === 'required' || choice?.type === 'function';
    const plan: ToolsPlan | undefined =
      tools && choice?.type === 'function' ? { ...tools, functions: tools.functions.filter((f) => f.name === choice.name) } : tools;
    const schemaText: SchemaGrammarText = (schema) => this.schemaText(schema, param);
    const grammar = await this.checked(await answerGrammar(json, plan && { ...plan, forced }, schemaText), param);
    const afterTrigger =
      plan && !forced && !json ? await this.checked(await callsAfter(plan.syntax.trigger, plan, schemaText), param) : undefined;
    return { grammar, afterTrigger, forcedCalls: forced, tools: plan !== undefined, json: json !== undefined };
  }

  /** node-llama-cpp's grammar of one schema; what it refuses is the client's schema: a 400. */
  private async schemaText(schema: GrammarSchema, param: string): Promise<string> {
    const { schema: swapped, substitute } = withEnumTries(schema, this.nonce);
    let text: string;
    try {
      text = (await this.llama.createGrammarForJsonSchema(swapped as never)).grammar;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new InvalidSchemaError(`${param}: the schema could not be compiled to a grammar (${why})`, param);
    }
    try {
      return substitute(text);
    } catch (err) {
      throw new CompositionError(err instanceof Error ? err.message : String(err), text.slice(0, HEAD_CHARS));
    }
  }

  /** The composed grammar within --max-grammar-rules, and one llama.cpp accepts (else a fault of ours). */
  private async checked(grammar: string | undefined, param: string): Promise<string | undefined> {
    if (grammar === undefined) return undefined;
    let rules = 0;
    for (let i = grammar.indexOf(' ::= '); i !== -1; i = grammar.indexOf(' ::= ', i + 5)) rules++;
    if (rules > this.limits.maxRules) throw new GrammarTooLargeError(param, rules, this.limits.maxRules);
    try {
      // Parsed here so that a grammar llama.cpp refuses never reaches a model worker.
      await this.llama.createGrammar({ grammar });
    } catch (err) {
      throw new CompositionError(
        `the composed grammar does not parse (${err instanceof Error ? err.message : String(err)})`,
        grammar.slice(0, HEAD_CHARS),
      );
    }
    return grammar;
  }
}
