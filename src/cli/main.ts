#!/usr/bin/env node
/** peerdma command line. Each command lives in its own file and calls the library. */
import { Command } from "commander";
import { registerDemo } from "./commands/demo.js";
import { registerExplain } from "./commands/explain.js";
import { registerIommuGroups } from "./commands/iommu-groups.js";
import { registerMachines } from "./commands/machines.js";
import { registerMatrix } from "./commands/matrix.js";
import { registerRun } from "./commands/run.js";
import { registerScan } from "./commands/scan.js";
import { registerTlp } from "./commands/tlp.js";
import { registerTopo } from "./commands/topo.js";
import { EXIT_BAD_INPUT } from "./io.js";

export function buildProgram(): Command {
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
  registerDemo(program);
  registerMachines(program);
  registerScan(program);
  registerTopo(program);
  registerMatrix(program);
  registerExplain(program);
  registerIommuGroups(program);
  registerRun(program);
  registerTlp(program);
  return program;
}

buildProgram().parseAsync(process.argv);
