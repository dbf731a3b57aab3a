// Builds app.js into a placement-policy component:
//
//     node build.mjs OUT.wasm
//
// Uses componentize-js's API rather than `jco componentize`, whose CLI
// mishandles an absolute --wit path. Paths are resolved from this file, so it
// runs from any directory. componentize-js reads the WIT through the
// @bytecodealliance/preview2-shim it finds beside it, which package.json pins
// at 0.25.0: later shims open no directory by default, and the read fails.

import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const WORLD = 'ratchet:recovery/placement-policy@0.1.0';

// Features of the StarlingMonkey engine the policy does not use. Each one
// left on adds WASI imports; `http` and `fetch-event` would need wasi:http,
// which ratchet's host does not link at all. `stdio` stays on: without it an
// uncaught exception traps with no message, while with it the message reaches
// the guest stderr that ratchet quotes in the trap it reports.
const DISABLED = ['http', 'fetch-event', 'clocks', 'random'];

const here = dirname(fileURLToPath(import.meta.url));

async function main() {
  const out = process.argv[2];
  if (!out || process.argv.length > 3) {
    console.error('usage: node build.mjs OUT.wasm');
    return 2;
  }
  let componentize;
  try {
    ({ componentize } = await import('@bytecodealliance/componentize-js'));
  } catch (e) {
    console.error(`cannot load @bytecodealliance/componentize-js (run \`npm ci\` in ${here}): ${e.message}`);
    return 1;
  }
  const started = performance.now();
  let component;
  try {
    ({ component } = await componentize({
      sourcePath: resolve(here, 'app.js'),
      witPath: resolve(here, '../../wit'),
      worldName: WORLD,
      disableFeatures: DISABLED,
    }));
  } catch (e) {
    console.error(`componentize-js failed to build ${WORLD} from app.js:\n${e?.stack ?? e}`);
    return 1;
  }
  const path = resolve(process.cwd(), out);
  await writeFile(path, component);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`wrote ${path}: ${component.length} bytes in ${seconds} s`);
  return 0;
}

process.exitCode = await main().catch((e) => {
  console.error(e?.stack ?? e);
  return 1;
});
