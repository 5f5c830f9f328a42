/**
 * Turns --model into a local GGUF path and a model id: "demo" generates the tiny random-weight model
 * once; "hf:" URIs are downloaded by node-llama-cpp into --models-dir (progress bar on a terminal,
 * log lines otherwise); anything else must be an existing file.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../errors.js';
import { writeDemoModel } from '../demo-model/demo-model.js';

const DEMO_FILE = 'qwen-serve-demo-tiny.gguf';

export interface ResolvedModel {
  path: string;
  id: string;
  /** True for the generated model: its weights are random. */
  demo: boolean;
}

function defaultId(file: string): string {
  return path.basename(file).replace(/\.gguf$/i, '');
}

async function demoModel(modelsDir: string, log: Logger): Promise<string> {
  const file = path.join(modelsDir, DEMO_FILE);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(modelsDir, { recursive: true });
    // Written under a temporary name, then renamed: a crash never leaves a half-written model behind.
    const tmp = `${file}.${process.pid}.tmp`;
    await writeDemoModel({ size: 'tiny', outPath: tmp });
    fs.renameSync(tmp, file);
    log.info({ path: file }, 'generated the demo model');
  }
  return file;
}

const isRemote = (model: string) => /^(hf:|huggingface:|https?:\/\/)/i.test(model);

async function download(uri: string, modelsDir: string, log: Logger, flag: string): Promise<string> {
  const { resolveModelFile } = await import('node-llama-cpp');
  const tty = process.stdout.isTTY === true;
  let lastLogged = 0;
  try {
    fs.mkdirSync(modelsDir, { recursive: true });
    return await resolveModelFile(uri, {
      directory: modelsDir,
      cli: tty,
      onProgress: tty
        ? undefined
        : ({ totalSize, downloadedSize }) => {
            const now = Date.now();
            if (now - lastLogged < 2000 && downloadedSize < totalSize) return;
            lastLogged = now;
            log.info({ uri, downloadedBytes: downloadedSize, totalBytes: totalSize }, 'downloading model');
          },
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ConfigError(
      `Could not get the model ${uri} (${why}). If this machine is offline, use ${flag} demo (a generated test model) or ${flag} PATH (a local .gguf file).`,
      1,
    );
  }
}

/** @param flag the flag the source came from (--model, --draft-model), for the messages */
export async function resolveModel(
  model: string,
  modelsDir: string,
  modelId: string | undefined,
  log: Logger,
  flag = '--model',
): Promise<ResolvedModel> {
  if (model === 'demo') {
    const file = await demoModel(modelsDir, log);
    return { path: file, id: modelId ?? 'qwen2.5-demo', demo: true };
  }
  if (isRemote(model)) {
    const file = await download(model, modelsDir, log, flag);
    return { path: file, id: modelId ?? defaultId(file), demo: false };
  }
  const file = path.resolve(model);
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
    throw new ConfigError(`${flag}: no such file: ${file} (give a .gguf path, an hf: URI, or "demo")`);
  }
  return { path: file, id: modelId ?? defaultId(file), demo: false };
}
