#!/usr/bin/env node
// Runs Biome's native binary for this platform. The @biomejs/biome wrapper package is not used:
// its optional dependencies name every platform's binary, and the registry this project installs
// from serves only the Linux ones, which makes `npm ci` reject the lock file.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const pkg = `@biomejs/cli-${process.platform}-${process.arch}`;
const bin = fileURLToPath(new URL(`../node_modules/${pkg}/biome`, import.meta.url));
if (!existsSync(bin)) {
  console.error(
    `biome: no binary for ${process.platform}-${process.arch} (expected ${pkg}; install it with npm)`,
  );
  process.exit(2);
}
const r = spawnSync(bin, process.argv.slice(2), { stdio: "inherit" });
process.exit(r.status ?? 1);
