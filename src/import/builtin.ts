/** Built-in machines: data files in data/machines, named `builtin:<name>`. */
import type { Fabric } from "../pci/fabric.js";
import { builtinText } from "./builtin-list.js";
import { parseMachineFile } from "./machine-file.js";
import type { MachineDescription } from "./machine-schema.js";

export { type BuiltinInfo, builtinMachines, builtinText } from "./builtin-list.js";

export function loadBuiltin(name: string): { description: MachineDescription; fabric: Fabric } {
  const { text, file } = builtinText(name);
  return parseMachineFile(text, file);
}
