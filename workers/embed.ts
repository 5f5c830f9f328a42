/**
 * Embedding models (a GGUF that declares a pooling type, such as gte-Qwen2): the worker holds an embedding
 * context instead of a generation context, and each task returns one vector, L2-normalized as OpenAI's
 * embeddings are (cosine similarity is then a dot product).
 */
import type { LlamaEmbeddingContext, LlamaModel, Token } from 'node-llama-cpp';
import { InvalidRequestError } from '../src/errors.js';
import type { GenerateInput } from '../src/shared/protocol.js';
import { checkedTokens } from '../src/shared/prompt.js';
import { asGenerationError } from './generation-error.js';

/** llama.cpp's pooling types: unspecified (-1) and none (0) mean a text-generation model. */
export function isEmbeddingModel(model: LlamaModel): boolean {
  const metadata = model.fileInfo.metadata as unknown as Record<string, { pooling_type?: number } | undefined>;
  const pooling = metadata[model.fileInfo.metadata.general.architecture]?.pooling_type;
  return pooling !== undefined && pooling > 0;
}

export async function embed(
  context: LlamaEmbeddingContext,
  model: LlamaModel,
  vocabularySize: number,
  input: GenerateInput,
): Promise<{ vector: number[]; tokens: number }> {
  const tokens: Token[] = asGenerationError(() => {
    if (input.kind === 'chat' || input.suffix !== undefined)
      throw new InvalidRequestError('input: must be text or token ids', 'input', 'invalid_value');
    return input.kind === 'tokens' ? checkedTokens(input.tokens, vocabularySize, 'input') : model.tokenize(input.prompt, false);
  });
  const { vector } = await context.getEmbeddingFor(tokens);
  const norm = Math.hypot(...vector) || 1;
  return { vector: Array.from(vector, (v) => v / norm), tokens: tokens.length };
}
