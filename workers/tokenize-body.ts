/**
 * The body of a /tokenize answer as JSON text, built in the tokenizer worker: for a large input it is
 * megabytes (a million {id, piece} entries from one 1 MB request), and the main thread only writes it out.
 */
export function tokenizeBody(tokens: readonly number[], piece: ((token: number) => string) | undefined, maxModelLen: number): string {
  const items = piece ? tokens.map((id) => `{"id":${id},"piece":${JSON.stringify(piece(id))}}`) : tokens;
  return `{"tokens":[${items.join(',')}],"count":${tokens.length},"max_model_len":${maxModelLen}}`;
}
