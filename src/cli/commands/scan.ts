import { existsSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { InputError } from "../../core/errors.js";
import { exportHwlocXml, exportNcclTopology } from "../../export/index.js";
import { guard, print, printJson } from "../io.js";
import { assumptionsNote, cpuNote, machineFromArgs } from "../machine-arg.js";

export function registerScan(program: Command): void {
  program
    .command("scan")
    .description("read a machine (live /sys when no source is given) and say what was found")
    .argument("[source...]", "sources of one machine; default /sys on a Linux host")
    .option("--json", "machine-readable output")
    .option("--cpu <cpu>", "host CPU when the source does not say: amd-zen | intel | <vendor>:<family>")
    .action((sources: string[], opts: { json?: boolean; cpu?: string }) =>
      guard(() => {
        let srcs = sources;
        if (!srcs.length) {
          if (process.platform !== "linux" || !existsSync("/sys/bus/pci/devices"))
            throw new InputError(
              "no source given and no /sys/bus/pci on this host; give a sysfs copy, lspci output, hwloc or NCCL XML",
            );
          srcs = ["/sys"];
        }
        const { machine, loaded } = machineFromArgs(srcs, opts);
        const f = machine.fabric;
        const kinds: Record<string, number> = {};
        for (const d of f.devices()) kinds[d.kind] = (kinds[d.kind] ?? 0) + 1;
        const summary = {
          machine: machine.name,
          sources: loaded.inputs,
          functions: f.devices().length,
          kinds,
          hostBridges: f.hostBridges.map((hb) => ({
            name: hb.label,
            numaNode: hb.numaNode,
            identity: hb.identityDevice?.bdf ?? null,
          })),
          cpu: { ...machine.cpu, assumed: machine.cpuAssumed },
          reportedGroups: loaded.reportedGroups?.length ?? null,
          warnings: loaded.warnings,
          assumptions: loaded.unknowns,
          conflicts: loaded.conflicts,
        };
        if (opts.json) {
          printJson(summary);
          return;
        }
        const out = [
          `Read ${loaded.inputs.map((i) => `${i.file} (${i.format})`).join(", ")}`,
          `${summary.functions} PCI functions: ${Object.entries(kinds)
            .map(([k, n]) => `${n} ${k}`)
            .join(", ")}`,
          `${f.hostBridges.length} host bridge(s): ${summary.hostBridges.map((h) => `${h.name}${h.numaNode >= 0 ? ` (NUMA ${h.numaNode})` : ""}`).join(", ")}`,
          cpuNote(machine),
          summary.reportedGroups === null
            ? "The source carries no IOMMU groups."
            : `The source reports ${summary.reportedGroups} IOMMU groups (compare with \`peerdma iommu-groups\`).`,
        ];
        if (loaded.warnings.length)
          out.push("", "Notes:", ...loaded.warnings.slice(0, 10).map((w) => `  ${w}`));
        const note = assumptionsNote(loaded);
        if (note) out.push("", note);
        out.push("", "Next: peerdma topo | matrix | iommu-groups | explain with the same source(s).");
        print(out.join("\n"));
      }),
    );

  program
    .command("export")
    .description("write the merged model as an NCCL topology file or hwloc XML")
    .argument("<source...>", "sources of one machine")
    .requiredOption("--format <format>", "nccl | hwloc")
    .option("-o, --output <file>", "write to a file instead of standard output")
    .option("--cpu <cpu>", "host CPU when the source does not say")
    .addHelpText(
      "after",
      "\nExample:\n  peerdma export --format nccl lspci-tv.txt lspci-vvv.txt lscpu.txt -o topo.xml   # then NCCL_TOPO_FILE=topo.xml",
    )
    .action((sources: string[], opts: { format: string; output?: string; cpu?: string }) =>
      guard(() => {
        if (opts.format !== "nccl" && opts.format !== "hwloc")
          throw new InputError(`--format ${opts.format}: expected nccl or hwloc`);
        const { machine } = machineFromArgs(sources, opts);
        const xml =
          opts.format === "nccl" ? exportNcclTopology(machine.fabric) : exportHwlocXml(machine.fabric);
        if (opts.output) writeFileSync(opts.output, xml);
        else print(xml);
      }),
    );
}
