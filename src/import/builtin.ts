/** Built-in machines: data files in data/machines, named `builtin:<name>`. */
import { readdirSync, readFileSync } from "node:fs";
import { InputError } from "../core/errors.js";
import type { Fabric } from "../pci/fabric.js";
import { packageDataPath } from "./data-dir.js";
import { parseMachineFile } from "./machine-file.js";
import type { MachineDescription } from "./machine-schema.js";

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

export function loadBuiltin(name: string): { description: MachineDescription; fabric: Fabric } {
  const { text, file } = builtinText(name);
  return parseMachineFile(text, file);
}
