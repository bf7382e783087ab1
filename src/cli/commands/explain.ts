import type { Command } from "commander";
import { type Explanation, explain } from "../../analysis/index.js";
import { guard, print, printJson } from "../io.js";
import { assumptionsNote, cpuNote, machineFromArgs } from "../machine-arg.js";

const gen = (gts: number) => ({ 2.5: 1, 5: 2, 8: 3, 16: 4, 32: 5, 64: 6, 128: 7 })[gts] ?? "?";

export function renderExplanation(e: Explanation, note: string): string {
  const out: string[] = [];
  out.push(
    `provider ${e.provider} → client ${e.client}: ${e.mapType}${e.distance === null ? "" : `, distance ${e.distance}`}, path ${e.pathType}`,
  );
  out.push(
    `  ${e.summary}`,
    "",
    "Path, hop by hop (provider first; the client's writes travel it in reverse):",
  );
  for (const h of e.hops) {
    if (h.step === "host-bridge") {
      out.push(`  ⇅ host bridge ${h.label}${h.bdf ? ` (identity ${h.bdf})` : ""}`);
      continue;
    }
    if (h.step === "interconnect") {
      out.push(`  ⇄ CPU interconnect ${h.label}`);
      continue;
    }
    const arrow = h.direction === "up" ? "↑" : h.direction === "down" ? "↓" : "•";
    const acs = h.acs
      ? `ACS ctrl ${h.acs.ctrl.join("|") || "none"}${h.acs.redirect ? " (redirect)" : ""}`
      : h.kind === "endpoint" || h.kind === "rciep"
        ? ""
        : "no ACS capability";
    const link = h.link
      ? `link Gen${gen(h.link.speed)} x${h.link.width} ${h.link.lineRateGBps.toFixed(3)} GB/s${h.link.degraded ? ` [${h.link.degraded}]` : ""}`
      : "";
    out.push(
      `  ${arrow} ${h.bdf} ${h.kind}${h.name ? ` "${h.name}"` : ""}${h.role && h.role !== "bridge" ? ` [${h.role}]` : ""}  ${[acs, link].filter(Boolean).join("; ")}`,
    );
  }
  out.push("", "Rules that decided:");
  for (const [i, r] of e.rules.entries()) out.push(`  ${i + 1}. ${r}`);
  if (e.kernelLog.length) {
    out.push("", "What the kernel logs for this pair:");
    for (const l of e.kernelLog) out.push(`  ${l}`);
  }
  if (e.performance)
    out.push(
      "",
      `Bandwidth (client writes into the provider's BAR): bottleneck line rate ${e.performance.bandwidthGBps?.toFixed(3) ?? "-"} GB/s, effective ${e.performance.effectiveGBps?.toFixed(3) ?? "-"} GB/s (${e.performance.pattern}); limited by ${e.performance.limit}`,
    );
  if (e.fix) {
    out.push("", "Least invasive fix:");
    if (typeof e.fix === "string") out.push(`  ${e.fix}`);
    else {
      for (const p of e.fix.ports)
        out.push(
          `  clear ${p.ctrlNow.filter((b) => !p.ctrlAfter.includes(b)).join("|")} at ${p.bdf}: ${p.setpci}`,
        );
      out.push(`  or boot with ${e.fix.kernelParameter}`);
      out.push(
        `  price: IOMMU groups ${e.fix.groupsBefore} → ${e.fix.groupsAfter}${e.fix.merged.length ? `; merged: ${e.fix.merged.map((g) => `{${g.join(", ")}}`).join(" ")}` : ""}`,
      );
    }
  }
  out.push("", note);
  return out.join("\n");
}

export function registerExplain(program: Command): void {
  program
    .command("explain")
    .description("why a client can (or cannot) DMA into a provider's BAR: the path hop by hop and each rule")
    .argument("<source>", "builtin:<name>, a machine file, or a topology source")
    .argument("<provider>", "BDF of the device whose memory is the target (dddd:bb:dd.f or bb:dd.f)")
    .argument("<client>", "BDF of the device that issues the DMA")
    .option("--json", "machine-readable output")
    .option(
      "--also <source...>",
      "more sources of the same machine to merge (e.g. lspci -vvv beside lspci -tv)",
    )
    .option("--cpu <cpu>", "host CPU when the source does not say: amd-zen | intel | <vendor>:<family>")
    .addHelpText("after", "\nExample:\n  peerdma explain builtin:storage-rdma 03:00.0 04:00.0")
    .action(
      (
        source: string,
        provider: string,
        client: string,
        opts: { json?: boolean; cpu?: string; also?: string[] },
      ) =>
        guard(() => {
          const { machine, loaded } = machineFromArgs([source, ...(opts.also ?? [])], opts);
          const e = explain(machine, machine.device(provider), machine.device(client));
          if (opts.json) printJson({ ...e, assumptions: loaded.unknowns });
          else {
            print(renderExplanation(e, cpuNote(machine)));
            const note = assumptionsNote(loaded);
            if (note) print(`\n${note}`);
          }
        }),
    );
}
