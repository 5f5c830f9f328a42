/**
 * --config FILE: flag values from a YAML or JSON file (a `.json` name is read as JSON, anything else as YAML,
 * which JSON also is). Keys are flag names without the dashes (`port: 8080`, `context-size: 4096`); lists join
 * as the flag's comma-separated form (`gpus: [0, 2]`); switches take true or false. `model` takes one source or
 * a list of them, as --model given several times. `models` maps model ids to each model's `source` and its own
 * settings (any flag marked per-model: workers, gpus, context-size, on-demand, ...). The values go through the
 * flags' own validators (config.ts), so a file and a command line are held to the same rules. A flag given on
 * the command line or in the environment wins over the file.
 */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';
import type { FlagSpec } from './options.js';

/** A `models:` entry: its source and its own settings, each as the text its flag would be given. */
export interface FileModel {
  source: string;
  settings: Map<string, string>;
}

export interface ConfigFile {
  /** Server-wide flag values by flag name. */
  values: Map<string, string>;
  /** The `model` key: one source or several (`ID=SOURCE` each). */
  model?: string[];
  /** The `models` key, by model id, in the file's order. */
  models: Map<string, FileModel>;
}

export function readConfigFile(file: string, flags: readonly FlagSpec[]): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--config ${file} cannot be read: ${(err as Error).message}`);
  }
  const json = file.toLowerCase().endsWith('.json');
  let data: unknown;
  try {
    data = json ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`--config ${file} is not valid ${json ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  const out: ConfigFile = { values: new Map(), models: new Map() };
  if (data == null) return out;
  if (!isMapping(data)) throw new ConfigError(`--config ${file} must hold a mapping of flag names to values (such as port: 8080)`);
  const byName = new Map(flags.filter((f) => f.name !== 'config').map((f) => [f.name, f]));
  for (const [key, value] of Object.entries(data)) {
    if (key === 'models') {
      out.models = fileModels(file, value, flags);
      continue;
    }
    const flag = byName.get(key);
    if (!flag) {
      throw new ConfigError(
        `--config ${file}: unknown key '${key}' (keys are flag names without the dashes, such as port or context-size, and models)`,
      );
    }
    if (flag.repeatable) {
      const list: unknown[] = Array.isArray(value) ? value : [value];
      if (list.length === 0 || !list.every((v): v is string => typeof v === 'string')) {
        throw new ConfigError(`--config ${file}: ${key} must be a string or a list of strings`);
      }
      out.model = list;
      continue;
    }
    out.values.set(key, flagText(`--config ${file}: ${key}`, flag, value));
  }
  return out;
}

/** `models: { ID: { source: ..., workers: 2, ... } }`, each key checked against the per-model flags. */
function fileModels(file: string, data: unknown, flags: readonly FlagSpec[]): Map<string, FileModel> {
  const where = `--config ${file}: models`;
  if (!isMapping(data)) throw new ConfigError(`${where} must map model ids to their settings (such as chat: { source: demo })`);
  const perModel = new Map(flags.filter((f) => f.perModel).map((f) => [f.name, f]));
  const models = new Map<string, FileModel>();
  for (const [id, entry] of Object.entries(data)) {
    if (!isMapping(entry)) throw new ConfigError(`${where}.${id} must be a mapping with a source (such as { source: demo })`);
    const { source, ...rest } = entry;
    if (typeof source !== 'string' || source.trim() === '') {
      throw new ConfigError(`${where}.${id}.source must be the model's path, hf: URI or demo`);
    }
    const settings = new Map<string, string>();
    for (const [key, value] of Object.entries(rest)) {
      const flag = perModel.get(key);
      if (!flag) {
        throw new ConfigError(
          `${where}.${id}: unknown key '${key}' (a model takes source and ${[...perModel.keys()].join(', ')}; other flags are server-wide)`,
        );
      }
      settings.set(key, flagText(`${where}.${id}.${key}`, flag, value));
    }
    models.set(id, { source: source.trim(), settings });
  }
  return models;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function flagText(where: string, flag: FlagSpec, value: unknown): string {
  if (flag.boolean) {
    if (typeof value !== 'boolean') throw new ConfigError(`${where} must be true or false`);
    return String(value);
  }
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) return value.join(',');
  throw new ConfigError(`${where} must be a string, a number or a list of them`);
}
