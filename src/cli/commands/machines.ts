import type { Command } from "commander";
import { builtinMachines } from "../../import/builtin-list.js";
import { guard, print, printJson } from "../io.js";

export function registerMachines(program: Command): void {
  program
    .command("machines")
    .description("list the built-in machines (usable as builtin:<name> wherever a source is accepted)")
    .option("--json", "machine-readable output")
    .action((opts: { json?: boolean }) =>
      guard(() => {
        const list = builtinMachines().map((b) => ({
          name: `builtin:${b.name}`,
          description: b.description,
        }));
        if (opts.json) printJson({ machines: list });
        else print(list.map((m) => `${m.name}\n    ${m.description}`).join("\n"));
      }),
    );
}
