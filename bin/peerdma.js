#!/usr/bin/env node
// Runs the compiled CLI (npm install builds it through `prepare`); falls back to the TypeScript
// sources through tsx in a development checkout that has not been built.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const dist = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
if (existsSync(dist)) {
  await import(pathToFileURL(dist).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(fileURLToPath(new URL("../src/cli/main.ts", import.meta.url))).href);
}
