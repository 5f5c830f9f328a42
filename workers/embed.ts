/**
 * Embedding models (a GGUF that declares a pooling type, such as gte-Qwen2): the worker holds an embedding
 * context instead of a generation context, and each task returns one vector, L2-normalized as OpenAI's
 * embeddings are (cosine similarity is then a dot product).
 */
import type { LlamaEmbeddingContext, LlamaModel } from 'node-llama-cpp';
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
  vocabularySize: number,
  prompt: readonly number[],
  param: string,
): Promise<{ vector: number[]; tokens: number }> {
  const tokens = asGenerationError(() => checkedTokens(prompt, vocabularySize, param));
  const { vector } = await context.getEmbeddingFor(tokens);
  const norm = Math.hypot(...vector) || 1;
  return { vector: Array.from(vector, (v) => v / norm), tokens: tokens.length };
}
