/**
 * Enums as prefix trees. node-llama-cpp writes `enum` as one alternative per value; llama.cpp's grammar
 * then carries one parse stack per value that still matches, and deduplicates its stacks with a linear
 * search for every stack (llama_grammar_advance_stack: std::find over the new stacks), so each sampled
 * token costs the square of the matching values: a 20k-value enum took 9 s for one short answer, a 110k one
 * 250 s, on the tiny model, with every other sequence of the worker waiting (docs/performance.md). As a
 * trie, one rule per branching point, the values that share a prefix share one stack: the stacks at any
 * point are at most the branches of one node, whatever the number of values.
 *
 * The values are replaced by placeholder constants before node-llama-cpp sees the schema, and the
 * placeholders' literals by the trie's root rule afterwards.
 */
import type { GrammarSchema } from '../../src/shared/protocol.js';
import { literal } from './gbnf.js';

interface TrieNode {
  terminal: boolean;
  children: Map<string, TrieNode>;
}

const node = (): TrieNode => ({ terminal: false, children: new Map() });

/**
 * GBNF rules matching exactly the given texts, the first named `name` (others `name-1`, `name-2`, …).
 * Characters are whole code points, so a literal never ends inside a surrogate pair.
 */
export function trieRules(texts: readonly string[], name: string): string[] {
  const root = node();
  for (const text of texts) {
    let n = root;
    for (const ch of text) {
      let next = n.children.get(ch);
      if (!next) n.children.set(ch, (next = node()));
      n = next;
    }
    n.terminal = true;
  }
  const rules: string[] = [];
  let count = 0;
  // Iterative (a work list, not recursion): a long chain of branching points must not grow the stack.
  const work: { n: TrieNode; rule: string }[] = [{ n: root, rule: name }];
  while (work.length > 0) {
    const { n, rule } = work.pop()!;
    const alternatives = [...n.children].map(([ch, child]) => {
      // Follow the chain while it neither branches nor ends: one literal for the whole edge.
      let label = ch;
      let end = child;
      while (!end.terminal && end.children.size === 1) {
        // The one entry (the loop's condition): a chain edge.
        const [c, only] = end.children.entries().next().value!;
        label += c;
        end = only;
      }
      if (end.children.size === 0) return literal(label);
      const childRule = `${name}-${++count}`;
      work.push({ n: end, rule: childRule });
      return `${literal(label)} ${childRule}`;
    });
    const body = alternatives.join(' | ');
    rules.push(`${rule} ::= ${n.terminal ? `( ${body} )?` : body}`);
  }
  return rules;
}

/** The JSON text a grammar must produce for each enum value. */
const jsonTexts = (values: readonly unknown[]): string[] => [...new Set(values.map((v) => JSON.stringify(v)))];

/**
 * Swaps every `enum` of `schema` for a placeholder constant. `substitute` then replaces the placeholders'
 * literals in node-llama-cpp's grammar of the swapped schema by trie rules. `nonce` keeps placeholders
 * apart from any string a client could have sent.
 */
export function withEnumTries(schema: GrammarSchema, nonce: string): { schema: GrammarSchema; substitute: (grammar: string) => string } {
  const enums: string[][] = [];
  const swap = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(swap);
    if (typeof value !== 'object' || value === null) return value;
    const obj = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (k === 'enum' && Array.isArray(v)) {
        out.const = `${nonce}-${enums.length}`;
        enums.push(jsonTexts(v));
      } else out[k] = swap(v);
    }
    return out;
  };
  const swapped = swap(schema) as GrammarSchema;
  const substitute = (grammar: string): string => {
    const extra: string[] = [];
    let out = grammar;
    enums.forEach((texts, i) => {
      const placeholder = literal(JSON.stringify(`${nonce}-${i}`));
      const rule = `enum${i}-trie`;
      if (!out.includes(placeholder)) throw new Error(`enum placeholder ${i} is missing from node-llama-cpp's grammar`);
      out = out.split(placeholder).join(rule);
      extra.push(...trieRules(texts, rule));
    });
    return extra.length === 0 ? out : `${out}\n${extra.join('\n')}`;
  };
  return { schema: swapped, substitute };
}
