/**
 * A task's Shaping (GBNF text composed by a tokenizer worker) as what generation needs: the native
 * grammar state to sample with from the first token, the one to switch to when a free answer starts a tool
 * call, and the parser that splits the answer into text and calls.
 *
 * Compiled grammars are cached by their text. llama.cpp parses a grammar's text again for every evaluation
 * state made from it (llama_sampler_init_grammar), so the cache keeps one pristine state per grammar and each
 * request gets a clone of it (llama_sampler_clone: a copy, no parse).
 */
import { LlamaGrammarEvaluationState, type LlamaModel } from 'node-llama-cpp';
import { LruCache } from '../../src/shared/lru.js';
import type { Shaping } from '../../src/shared/protocol.js';
import { nativeGrammarState, type NativeGrammarState } from '../native.js';
import { ToolCallParser } from './tool-parser.js';
import type { ToolCallSyntax } from './tool-syntax.js';

export interface CompiledShaping {
  /** Applied from the first token. */
  grammar?: NativeGrammarState;
  /** Splits tool calls from text (requests with tools). */
  parser?: ToolCallParser;
  /** For a free answer: the grammar of the rest of a call, once the parser saw its trigger. */
  afterTrigger?: NativeGrammarState;
  /** The answer is JSON (response_format): stop strings are not applied to it, they would break it. */
  json: boolean;
}

export class GrammarCache {
  private readonly pristine: LruCache<string, LlamaGrammarEvaluationState>;

  constructor(
    private readonly model: LlamaModel,
    size: number,
  ) {
    this.pristine = new LruCache(size);
  }

  /** A fresh evaluation state of `gbnf` (its own parse position, advanced by the sampler). */
  async state(gbnf: string): Promise<LlamaGrammarEvaluationState> {
    let base = this.pristine.get(gbnf);
    if (!base) {
      const grammar = await this.model.llama.createGrammar({ grammar: gbnf });
      base = new LlamaGrammarEvaluationState({ model: this.model, grammar });
      this.pristine.set(gbnf, base);
    }
    return base.clone();
  }
}

export async function compileShaping(
  cache: GrammarCache,
  syntax: ToolCallSyntax | undefined,
  s: Shaping | undefined,
): Promise<CompiledShaping> {
  if (!s) return { json: false };
  const native = async (gbnf: string | undefined) => (gbnf === undefined ? undefined : nativeGrammarState(await cache.state(gbnf)));
  return {
    grammar: await native(s.grammar),
    afterTrigger: await native(s.afterTrigger),
    // The tokenizer worker composed the calls grammar from the same template, so the syntax is there.
    parser: s.tools && syntax ? new ToolCallParser(syntax, s.forcedCalls) : undefined,
    json: s.json,
  };
}
