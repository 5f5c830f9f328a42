#!/usr/bin/env node
/**
 * make-model --size tiny|full --out PATH [--type q8_0|f16|f32] [--seed N] [--pooling mean|cls|last]
 *
 * Writes a demo qwen2 GGUF model (random weights; the tiny one follows a fixed script).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  DEMO_POOLINGS,
  TINY_SCRIPT_TEXT,
  TINY_SCRIPT_TOKENS,
  writeDemoModel,
  type DemoModelSize,
  type DemoModelType,
  type DemoPooling,
} from '../demo-model/demo-model.js';

function parseSeed(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new InvalidArgumentError('must be an integer in 0..2^32-1');
  return n;
}

const program = new Command()
  .name('make-model')
  .description("Write a demo GGUF model of llama.cpp's qwen2 architecture with generated weights")
  .addOption(new Option('--size <size>', 'model size').choices(['tiny', 'full']).makeOptionMandatory())
  .requiredOption('--out <path>', 'output .gguf path')
  .addOption(new Option('--type <type>', 'weight type of the matrices').choices(['q8_0', 'f16', 'f32']).default('q8_0'))
  .option('--seed <n>', 'seed of the random weights', parseSeed, 1)
  .addOption(
    new Option('--pooling <type>', 'write an embedding model (llama.cpp pooling type), served on /v1/embeddings').choices(
      Object.keys(DEMO_POOLINGS),
    ),
  )
  .action(async (opts: { size: DemoModelSize; out: string; type: DemoModelType; seed: number; pooling?: DemoPooling }) => {
    const started = performance.now();
    const info = await writeDemoModel({ size: opts.size, outPath: opts.out, type: opts.type, seed: opts.seed, pooling: opts.pooling });
    const secs = (performance.now() - started) / 1000;
    const s = info.shape;
    const mib = info.bytes / (1 << 20);
    console.log(`wrote ${info.outPath}: ${info.bytes} bytes (${mib.toFixed(mib < 10 ? 2 : 1)} MiB) in ${secs.toFixed(1)} s`);
    console.log(
      `qwen2 ${info.size} ${info.type}: hidden ${s.hidden}, layers ${s.layers}, heads ${s.heads}/${s.kvHeads} kv, ` +
        `ffn ${s.ffn}, vocab ${s.vocab}, context ${s.contextLength}; ${info.tensors} tensors, ${info.parameters} parameters`,
    );
    if (info.size === 'tiny')
      console.log(`greedy script (${TINY_SCRIPT_TOKENS} tokens, then <|im_end|>): ${JSON.stringify(TINY_SCRIPT_TEXT)}`);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`make-model: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
