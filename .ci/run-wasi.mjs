// Runs a wasm32-wasip1 test binary under Node's WASI (the cargo runner of
// .ci/run's wasm step): node --no-warnings .ci/run-wasi.mjs FILE.wasm ARGS...
// The whole file system is one preopen at / (Node honours only the last of
// several), so paths given to the tests must be absolute.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [file, ...rest] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...rest],
  env: process.env,
  preopens: { '/': '/' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
