/**
 * Path classes as `nvidia-smi topo -m` and NCCL name them:
 * X (same device), PIX (at most one PCIe bridge — a switch counts once), PXB (several bridges,
 * no host bridge), PHB (through one host bridge), NODE (between host bridges of one NUMA node),
 * SYS (across the SMP interconnect between NUMA nodes).
 */
import type { PciDev } from "../pci/device.js";
import { PCI_EXP_TYPE } from "../pci/regs.js";
import { route } from "./route.js";

export type PathType = "X" | "PIX" | "PXB" | "PHB" | "NODE" | "SYS";

export const PATH_TYPE_LEGEND: Record<PathType, string> = {
  X: "self",
  PIX: "connection traversing at most a single PCIe bridge (a switch counts once)",
  PXB: "connection traversing multiple PCIe bridges (without traversing the PCIe host bridge)",
  PHB: "connection traversing PCIe as well as a PCIe host bridge (typically the CPU)",
  NODE: "connection traversing PCIe as well as the interconnect between PCIe host bridges within a NUMA node",
  SYS: "connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g. QPI/UPI)",
};

/** A switch's ports are one bridge; any other bridge is its own. */
function bridgeUnit(d: PciDev): PciDev {
  if (d.pcieType === PCI_EXP_TYPE.DOWNSTREAM && d.bus.self?.pcieType === PCI_EXP_TYPE.UPSTREAM)
    return d.bus.self;
  return d;
}

function numaOf(d: PciDev): number {
  return d.numaNode >= 0 ? d.numaNode : d.hostBridge.numaNode;
}

export function pathType(a: PciDev, b: PciDev): PathType {
  if (a === b) return "X";
  const r = route(a, b);
  if (!r.commonAncestor) {
    if (a.hostBridge === b.hostBridge) return "PHB";
    const na = numaOf(a);
    const nb = numaOf(b);
    return na >= 0 && nb >= 0 && na !== nb ? "SYS" : "NODE";
  }
  const units = new Set<PciDev>();
  for (const s of r.steps)
    if (s.kind === "device" && s.dev !== a && s.dev !== b && s.dev.subordinate) units.add(bridgeUnit(s.dev));
  return units.size <= 1 ? "PIX" : "PXB";
}
