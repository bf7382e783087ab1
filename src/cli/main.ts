#!/usr/bin/env node
/** peerdma command line. Each command lives in its own file and calls the library. */
import { Command } from "commander";
import { EXIT_BAD_INPUT } from "./io.js";

type Register = (program: Command) => void;

/**
 * Each command's module, loaded only when needed: `peerdma tlp decode …` never loads the importers,
 * zod or the XML parser (start-up is most of a small command's time).
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  demo: async () => (await import("./commands/demo.js")).registerDemo,
  machines: async () => (await import("./commands/machines.js")).registerMachines,
  // scan.ts registers both `scan` and `export`
  scan: async () => (await import("./commands/scan.js")).registerScan,
  export: async () => (await import("./commands/scan.js")).registerScan,
  topo: async () => (await import("./commands/topo.js")).registerTopo,
  matrix: async () => (await import("./commands/matrix.js")).registerMatrix,
  explain: async () => (await import("./commands/explain.js")).registerExplain,
  "iommu-groups": async () => (await import("./commands/iommu-groups.js")).registerIommuGroups,
  run: async () => (await import("./commands/run.js")).registerRun,
  tlp: async () => (await import("./commands/tlp.js")).registerTlp,
};

/** The program with the command `argv` names (none for --version; all for help, a typo or no command). */
export async function buildProgram(argv: string[] = process.argv): Promise<Command> {
  const first = argv[2];
  const named =
    first !== undefined && Object.hasOwn(COMMANDS, first)
      ? [first]
      : first === "--version" || first === "-V"
        ? []
        : Object.keys(COMMANDS);
  const registers = [...new Set(await Promise.all(named.map((n) => COMMANDS[n]())))];
  const program = new Command();
  program
    .name("peerdma")
    .description(
      "An executable model of the Linux PCIe peer-to-peer DMA stack: can this device DMA into that one's memory, by which path, how fast, and why not.",
    )
    .version("0.1.0")
    .showHelpAfterError()
    .exitOverride((err) => {
      if (
        err.code === "commander.helpDisplayed" ||
        err.code === "commander.version" ||
        err.code === "commander.help"
      )
        process.exit(0);
      process.exit(EXIT_BAD_INPUT);
    })
    .addHelpText(
      "after",
      `
A <source> is builtin:<name> (see \`peerdma machines\`), a peerdma machine file (YAML/JSON), a
sysfs directory or archive (.tar, .tar.gz, .tar.bz2; /sys on a live host), lspci -t/-v/-mm/-x
output, hwloc XML or NCCL topology XML. Several sources of one machine may be given together.

Exit codes: 0 success, 1 a scenario expectation failed, 2 bad input.

Start with:
  peerdma demo
  peerdma topo builtin:storage-rdma
  peerdma matrix builtin:storage-rdma
  peerdma explain builtin:storage-rdma 03:00.0 04:00.0
  peerdma run scenarios/spdk-cmb.yaml
  peerdma tlp decode --dword-order le 08000260 F0000004 E0200000 00080006 90F00000`,
    );
  for (const register of registers) register(program);
  return program;
}

await (await buildProgram()).parseAsync(process.argv);
