/**
 * The built-in machines' names, descriptions and text: data files in data/machines. Apart from
 * builtin.ts (which parses them) so that listing them loads no parser (`peerdma machines` starts
 * in well under 150 ms).
 */
import { readdirSync, readFileSync } from "node:fs";
import { InputError } from "../core/errors.js";
import { packageDataPath } from "./data-dir.js";

const DIR = `${packageDataPath("machines")}/`;

export interface BuiltinInfo {
  name: string;
  description: string;
  file: string;
}

export function builtinMachines(): BuiltinInfo[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => {
      const text = readFileSync(DIR + f, "utf8");
      const m = /^description:\s*(?:>-?\s*\n)?([\s\S]*?)\n(?:[a-z]+:|$)/m.exec(text);
      return {
        name: f.replace(/\.yaml$/, ""),
        description: (m?.[1] ?? "").replace(/\s+/g, " ").trim(),
        file: DIR + f,
      };
    });
}

export function builtinText(name: string): { text: string; file: string } {
  const n = name.replace(/^builtin:/, "");
  if (!/^[a-z0-9-]+$/.test(n) || !builtinMachines().some((b) => b.name === n))
    throw new InputError(
      `no built-in machine "${n}" (known: ${builtinMachines()
        .map((b) => b.name)
        .join(", ")})`,
    );
  const file = `${DIR}${n}.yaml`;
  return { text: readFileSync(file, "utf8"), file: `builtin:${n}` };
}
