/**
 * Small tools for composing GBNF grammars (llama.cpp's grammar format) out of node-llama-cpp's JSON-schema
 * grammars: a tool call is literal text around a JSON object, and several tools' argument grammars must
 * live in one grammar without their rule names colliding.
 */

/** A GBNF string literal that matches `text` exactly ('' for empty text: GBNF has no empty literal). */
export function literal(text: string): string {
  return text.length === 0 ? '' : JSON.stringify(text);
}

/** A GBNF sequence of the non-empty parts. */
export function seq(...parts: string[]): string {
  return parts.filter((p) => p !== '').join(' ');
}

/**
 * Renames every rule of `grammar` (its definitions and the references to them) to `prefix + name`.
 * References are the identifiers outside string literals ("…") and character classes ([…]).
 */
export function prefixRules(grammar: string, prefix: string): string {
  let out = '';
  let i = 0;
  while (i < grammar.length) {
    const c = grammar[i]!;
    if (c === '"' || c === '[') {
      const end = endOfQuoted(grammar, i, c === '"' ? '"' : ']');
      out += grammar.slice(i, end);
      i = end;
    } else if (c === '#') {
      const end = grammar.indexOf('\n', i);
      i = end === -1 ? grammar.length : end;
    } else if (/[a-zA-Z0-9_-]/.test(c) && !/[a-zA-Z0-9_-]/.test(grammar[i - 1] ?? ' ')) {
      let end = i;
      while (end < grammar.length && /[a-zA-Z0-9_-]/.test(grammar[end]!)) end++;
      const word = grammar.slice(i, end);
      // Repetition counts ({2,5}) are digits, not rule names.
      out += /^[0-9]+$/.test(word) ? word : prefix + word;
      i = end;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Index just past the literal or class that opens at `start` (backslash escapes skipped). */
function endOfQuoted(text: string, start: number, close: string): number {
  let i = start + 1;
  while (i < text.length && text[i] !== close) i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/**
 * node-llama-cpp's JSON-schema grammars end their root with a run of newlines (its own stop trigger);
 * here the grammar ends with the JSON value, so that the model's next token must be end-of-generation.
 */
const JSON_GRAMMAR_TAIL = / "\\n\\n\\n\\n" \[\\n\]\*$/m;

/**
 * Rules of node-llama-cpp's JSON grammars redefined here. Its number rules allow exponents of up to 16
 * digits, so "integers" like 1e-5 and numbers like 1e999 (Infinity after parsing): neither validates.
 * Integers here have no fraction or exponent and at most 15 digits (exact as JavaScript numbers;
 * src/structured/json-schema.ts counts on the limit), and exponents at most two digits.
 */
const RULE_OVERRIDES: Record<string, string> = {
  // Characters of JSON strings: also not UTF-16 surrogates, nor "characters" beyond U+10FFFF (llama.cpp
  // decodes any lead byte from F0 up as a 4-byte character, so these would be bytes that are not text).
  'string-char-rule': '[^"\\\\\\x7F\\x00-\\x1F\\uD800-\\uDFFF\\U00110000-\\U001FFFFF] | "\\\\" ["\\\\/bfnrt] | "\\\\u" [0-9a-fA-F]{4}',
  'integer-number-rule': '"-"? ("0" | [1-9] [0-9]{0,14})',
  'fractional-number-rule': '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
};

/**
 * The rules of a node-llama-cpp JSON-schema grammar, renamed with `prefix`; the value's rule is
 * `${prefix}root`.
 */
export function jsonValueRules(schemaGrammar: string, prefix: string): string {
  const lines = schemaGrammar.split('\n').map((line) => {
    const name = line.slice(0, line.indexOf(' ::= '));
    return name in RULE_OVERRIDES ? `${name} ::= ${RULE_OVERRIDES[name]}` : line;
  });
  const rootAt = lines.findIndex((l) => l.startsWith('root ::= '));
  if (rootAt === -1 || !JSON_GRAMMAR_TAIL.test(lines[rootAt]!)) {
    throw new Error("node-llama-cpp's JSON-schema grammar changed shape (root rule without its newline tail)");
  }
  lines[rootAt] = lines[rootAt]!.replace(JSON_GRAMMAR_TAIL, '');
  return prefixRules(lines.join('\n'), prefix);
}
