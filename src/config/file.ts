/**
 * --config FILE: flag values from a YAML or JSON file (a `.json` name is read as JSON, anything else as YAML,
 * which JSON also is). Keys are flag names without the dashes (`port: 8080`, `context-size: 4096`); lists join
 * as the flag's comma-separated form (`gpus: [0, 2]`); switches take true or false. The values go through the
 * flags' own validators (config.ts), so a file and a command line are held to the same rules. A flag given on
 * the command line or in the environment wins over the file.
 */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';
import type { FlagSpec } from './options.js';

/** Each key of the file as the text its flag would be given on the command line. */
export function readConfigFile(file: string, flags: readonly FlagSpec[]): Map<string, string> {
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
  if (data == null) return new Map();
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(`--config ${file} must hold a mapping of flag names to values (such as port: 8080)`);
  }
  const byName = new Map(flags.filter((f) => f.name !== 'config').map((f) => [f.name, f]));
  const values = new Map<string, string>();
  for (const [key, value] of Object.entries(data)) {
    const flag = byName.get(key);
    if (!flag) {
      throw new ConfigError(
        `--config ${file}: unknown key '${key}' (keys are flag names without the dashes, such as port or context-size)`,
      );
    }
    values.set(key, flagText(file, flag, value));
  }
  return values;
}

function flagText(file: string, flag: FlagSpec, value: unknown): string {
  if (flag.boolean) {
    if (typeof value !== 'boolean') throw new ConfigError(`--config ${file}: ${flag.name} must be true or false`);
    return String(value);
  }
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) return value.join(',');
  throw new ConfigError(`--config ${file}: ${flag.name} must be a string, a number or a list of them`);
}
