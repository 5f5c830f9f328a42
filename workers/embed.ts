/**
 * Embedding models (a GGUF that declares a pooling type, such as gte-Qwen2): the worker holds an embedding
 * context instead of a generation context, and each task returns one vector, L2-normalized as OpenAI's
 * embeddings are (cosine similarity is then a dot product).
 */
import type { LlamaEmbeddingContext, LlamaModel, Token } from 'node-llama-cpp';
import { ContextLengthExceededError } from '../src/errors.js';
import { checkedTokens } from '../src/shared/prompt.js';

/** An embedding model's resources: the model and one embedding context (loaded by workers/model.ts). */
export interface LoadedEmbedder {
  kind: 'embed';
  model: LlamaModel;
  embeddings: LlamaEmbeddingContext;
  vocabularySize: number;
  /** --context-size: an input must fit it. */
  contextSize: number;
  llamaCppRelease: string;
}

/** llama.cpp's pooling types: unspecified (-1) and none (0) mean a text-generation model. */
export function isEmbeddingModel(model: LlamaModel): boolean {
  const metadata = model.fileInfo.metadata as unknown as Record<string, { pooling_type?: number } | undefined>;
  const pooling = metadata[model.fileInfo.metadata.general.architecture]?.pooling_type;
  return pooling !== undefined && pooling > 0;
}

/** `prompt`: the input's tokens (from the tokenizer workers); `param`: its request field, for errors. */
export async function embed(
  loaded: LoadedEmbedder,
  prompt: readonly number[],
  param: string,
): Promise<{ vector: number[]; tokens: number }> {
  const { embeddings, contextSize } = loaded;
  const tokens: Token[] = checkedTokens(prompt, loaded.vocabularySize, param);
  // What the context evaluates (the model may add BOS/EOS) must leave one cell free, as node-llama-cpp
  // requires; beyond that it throws, which would be a 500 for a request that is simply too long.
  const length = embeddings.calculateInputLength(tokens);
  if (length >= contextSize) throw ContextLengthExceededError.embeddingInput(contextSize, param, length);
  const { vector } = await embeddings.getEmbeddingFor(tokens);
  const norm = Math.hypot(...vector) || 1;
  return { vector: Array.from(vector, (v) => v / norm), tokens: tokens.length };
}
