#!/usr/bin/env node
// Runs the bundled CLI (npm install builds it through `prepare`), else the compiled modules, else
// the TypeScript sources through tsx in a development checkout that has not been built.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const at = (rel) => fileURLToPath(new URL(rel, import.meta.url));
const bundle = at("../dist/cli/bundle/main.mjs");
const dist = at("../dist/cli/main.js");
if (existsSync(bundle)) {
  await import(pathToFileURL(bundle).href);
} else if (existsSync(dist)) {
  await import(pathToFileURL(dist).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(at("../src/cli/main.ts")).href);
}
