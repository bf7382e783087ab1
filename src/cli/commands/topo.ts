import type { Command } from "commander";
import { hex } from "../../core/hex.js";
import type { PciBus, PciDev } from "../../pci/device.js";
import type { Fabric } from "../../pci/fabric.js";
import { acsBitNames } from "../../pci/regs.js";
import { guard, print, printJson } from "../io.js";
import { machineFromArgs } from "../machine-arg.js";

export interface TopoFunction {
  bdf: string;
  vendor: string;
  device: string;
  class: string;
  kind: string;
  parent: string | null;
  link: { speed: number; width: number; maxSpeed: number; maxWidth: number } | null;
  /** Extensions. */
  name: string;
  driver: string | null;
  numaNode: number;
  acs: { cap: string[]; ctrl: string[] } | null;
  physfn?: string;
}

export function topoJson(f: Fabric): { functions: TopoFunction[] } {
  return {
    functions: f.devices().map((d) => {
      const up = d.isVirtfn ? d.physfn : d.bus.self;
      const l = d.isVirtfn ? null : d.link;
      return {
        bdf: d.bdf,
        vendor: hex(d.vendor, 4),
        device: hex(d.device, 4),
        class: hex(d.classCode, 6),
        kind: d.kind,
        parent: d.isVirtfn ? (d.bus.self?.bdf ?? null) : (up?.bdf ?? null),
        link: l ? { speed: l.speed, width: l.width, maxSpeed: l.maxSpeed, maxWidth: l.maxWidth } : null,
        name: d.name,
        driver: d.driver,
        numaNode: d.numaNode,
        acs: d.acsCapOffset ? { cap: acsBitNames(d.acsCapReg), ctrl: acsBitNames(d.acsCtrlReg) } : null,
        ...(d.physfn ? { physfn: d.physfn.bdf } : {}),
      };
    }),
  };
}

const gen = (gts: number) => ({ 2.5: 1, 5: 2, 8: 3, 16: 4, 32: 5, 64: 6, 128: 7 })[gts] ?? "?";

function linkText(d: PciDev): string {
  const l = d.isVirtfn ? null : d.link;
  if (!l) return "";
  const now = `Gen${gen(l.speed)} x${l.width}`;
  const cap = `Gen${gen(l.maxSpeed)} x${l.maxWidth}`;
  return l.maxSpeed && (l.maxSpeed !== l.speed || l.maxWidth !== l.width) ? `${now} (capable ${cap})` : now;
}

/** `lspci -tv` shape, with links, ACS and drivers. */
export function renderTopo(f: Fabric): string {
  const out: string[] = [];
  const line = (d: PciDev) => {
    const bits = [
      `${d.slot.toString(16).padStart(2, "0")}.${d.fn}`,
      `[${hex(d.vendor, 4).slice(2)}:${hex(d.device, 4).slice(2)}]`,
      d.kind,
      d.name,
      linkText(d),
      d.acsCapOffset ? `ACS ctrl ${acsBitNames(d.acsCtrlReg).join("|") || "none"}` : "",
      d.driver ? `driver ${d.driver}` : "",
      d.isVirtfn ? `VF of ${d.physfn?.bdf}` : "",
    ];
    return bits.filter(Boolean).join("  ");
  };
  const walk = (bus: PciBus, prefix: string) => {
    bus.devices.forEach((d, i) => {
      const last = i === bus.devices.length - 1;
      const sub = d.subordinate ? ` ─[${d.subordinate.number.toString(16).padStart(2, "0")}]` : "";
      out.push(`${prefix}${last ? "└─" : "├─"} ${line(d)}${sub}`);
      if (d.subordinate) walk(d.subordinate, prefix + (last ? "   " : "│  "));
    });
  };
  for (const hb of f.hostBridges) {
    out.push(
      `[${hb.label.slice(3)}] host bridge ${hb.label}${hb.name ? ` "${hb.name}"` : ""}${hb.numaNode >= 0 ? `  NUMA ${hb.numaNode}` : ""}  identity ${hb.identityDevice?.bdf ?? "none"}`,
    );
    walk(hb.rootBus, " ");
  }
  return out.join("\n");
}

export function registerTopo(program: Command): void {
  program
    .command("topo")
    .description("the PCI tree, like lspci -tv, with link speeds, ACS controls and drivers")
    .argument("<source...>", "builtin:<name>, a machine file, or a topology source")
    .option("--json", "machine-readable output (DESIGN.md contract)")
    .action((sources: string[], opts: { json?: boolean }) =>
      guard(() => {
        const { machine } = machineFromArgs(sources, {});
        if (opts.json) printJson(topoJson(machine.fabric));
        else print(renderTopo(machine.fabric));
      }),
    );
}
