#!/usr/bin/env node
// Runs every test/**/*.test.ts with Node's built-in runner through tsx.
// Extra arguments are passed to `node --test` (e.g. --test-name-pattern="K-9").
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const files = args.some((a) => a.endsWith(".test.ts")) ? [] : collect("test");
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", ...args, ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
