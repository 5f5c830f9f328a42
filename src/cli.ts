#!/usr/bin/env node
/** `qwen-serve`: parse flags (exit 2 on bad ones), start the server, drain on SIGTERM/SIGINT. */
import { parseConfig } from './config/config.js';
import { ConfigError } from './errors.js';
import { createLogger } from './log.js';
import { startServer } from './server.js';

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`qwen-serve: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
  if (parsed.kind === 'exit') {
    process.stdout.write(parsed.output);
    process.exit(parsed.code);
  }
  const config = parsed.config;
  const log = createLogger(config.logLevel);
  // A stray rejection or exception is logged, never allowed to take the whole server down.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));

  let server;
  try {
    server = await startServer(config, log);
  } catch (err) {
    if (err instanceof ConfigError) {
      log.fatal(err.message);
      process.stderr.write(`qwen-serve: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
  const running = server;
  const stop = (signal: string) => {
    running.shutdown(signal).then(
      () => process.exit(process.exitCode ?? 0),
      (err: unknown) => {
        log.fatal({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

await main();
