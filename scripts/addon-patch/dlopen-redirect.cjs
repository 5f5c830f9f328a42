/**
 * Preloaded (--require) into the process that checks a rebuilt addon before it is installed: node-llama-cpp
 * loads its addon from a fixed path, so the check swaps the file name at the one place every native module
 * passes through. node-llama-cpp's own binary test forks with the same execArgv and environment, so it loads
 * the candidate too.
 */
'use strict';
const path = require('node:path');

const installed = process.env.QWEN_SERVE_ADDON_INSTALLED;
const candidate = process.env.QWEN_SERVE_ADDON_CANDIDATE;
if (installed && candidate) {
  const dlopen = process.dlopen;
  process.dlopen = function redirected(module, filename, ...rest) {
    return dlopen.call(this, module, path.resolve(filename) === installed ? candidate : filename, ...rest);
  };
}
