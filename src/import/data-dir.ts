/** The package's data/ folder, found upwards from this module (src/, dist/ or a bench build). */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of `data/<rel>` in the package (the first one found walking up from here). */
export function packageDataPath(rel: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "data", rel);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return fileURLToPath(new URL(`../../data/${rel}`, import.meta.url));
}
