import type { Command } from "commander";
import { groupsAsBdfs } from "../../iommu/groups.js";
import type { Machine } from "../../machine/machine.js";
import { guard, print, printJson } from "../io.js";
import { machineFromArgs } from "../machine-arg.js";

export interface GroupsReport {
  groups: { id: number; devices: string[] }[];
  reported: { id: number; devices: string[] }[] | null;
  agree: boolean | null;
  /** Why each device is where it is (extension). */
  reasons: Record<string, string>;
}

export function groupsReport(m: Machine, reported: GroupsReport["reported"]): GroupsReport {
  const r = m.iommuGroups;
  const groups = groupsAsBdfs(r.groups);
  const norm = (gs: { id: number; devices: string[] }[]) =>
    JSON.stringify(gs.map((g) => ({ id: g.id, devices: [...g.devices].sort() })).sort((a, b) => a.id - b.id));
  const reasons: Record<string, string> = {};
  for (const [d, why] of r.reasons) {
    reasons[d.bdf] =
      why.kind === "new-group"
        ? "starts a group"
        : why.kind === "dma-alias"
          ? `DMA alias: requests carry ${why.via}'s id`
          : why.kind === "non-isolating-bridge"
            ? `bridge ${why.bridge} does not isolate (ACS SV|RR|CR|UF missing on the path)`
            : why.kind === "sibling-function"
              ? `non-isolated function of a multi-function device (with ${why.sibling})`
              : `DMA alias of ${why.device}`;
  }
  return { groups, reported, agree: reported ? norm(groups) === norm(reported) : null, reasons };
}

export function registerIommuGroups(program: Command): void {
  program
    .command("iommu-groups")
    .description(
      "IOMMU groups computed from ACS with the kernel's rules, beside the groups the kernel reported",
    )
    .argument("<source...>", "builtin:<name>, a machine file, or a topology source")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
Groups are computed (pci_device_group): devices in scan order join the first group reachable
through DMA aliases, bridges without ACS isolation (SV|RR|CR|UF) on the path to the root, or
non-isolated sibling functions. When the source carries the kernel's own groups (sysfs
iommu_group links, "IOMMU group" lines of lspci -v), both are shown and any disagreement is
flagged.`,
    )
    .action((sources: string[], opts: { json?: boolean }) =>
      guard(() => {
        const { machine, loaded } = machineFromArgs(sources, {});
        const rep = groupsReport(machine, loaded.reportedGroups);
        if (opts.json) {
          printJson(rep);
          return;
        }
        const out = [`IOMMU groups of ${machine.name} (computed from ACS, ${rep.groups.length} groups):`];
        for (const g of rep.groups) {
          out.push(`  group ${g.id}:`);
          for (const d of g.devices) {
            const dev = machine.device(d);
            out.push(`    ${d}  ${dev.kind.padEnd(15)} ${dev.name}  — ${rep.reasons[d]}`);
          }
        }
        if (rep.reported) {
          out.push(
            "",
            rep.agree
              ? "The kernel reported the same groups."
              : "DISAGREEMENT with the groups the kernel reported:",
          );
          if (!rep.agree)
            for (const g of rep.reported) out.push(`  reported group ${g.id}: ${g.devices.join(" ")}`);
        } else out.push("", "The source carries no kernel-reported groups to compare with.");
        print(out.join("\n"));
      }),
    );
}
