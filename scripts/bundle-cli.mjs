#!/usr/bin/env node
// Bundles the compiled CLI (dist/cli/main.js) and its dependencies into one ES module,
// dist/cli/peerdma.mjs, which bin/peerdma.js prefers: loading one file instead of ~110 modules
// and four packages takes start-up from ~250 ms to ~150 ms (npm run bench measures it).
import { build } from "esbuild";

await build({
  entryPoints: ["dist/cli/main.js"],
  outfile: "dist/cli/peerdma.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  logLevel: "warning",
  // CommonJS packages inside an ES module bundle still call require()
  banner: {
    js: "import { createRequire as __peerdmaRequire } from 'node:module'; const require = __peerdmaRequire(import.meta.url);",
  },
});
