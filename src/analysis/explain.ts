/**
 * `peerdma explain A B`: the path hop by hop, with each node's ACS state, and every rule that
 * decided the verdict — the kernel's own log lines included — plus the least invasive fix.
 */

import { computeIommuGroups, groupsAsBdfs } from "../iommu/groups.js";
import type { Machine } from "../machine/machine.js";
import { calcMapTypeAndDist, type MapVerdict } from "../p2pdma/map-type.js";
import type { PciDev } from "../pci/device.js";
import { acsBitNames, PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR } from "../pci/regs.js";
import { type PathPerformance, pathPerformance } from "../perf/path.js";
import { type PathType, pathType } from "./path-type.js";
import { describeReason, verdictSummary } from "./reasons.js";
import { route } from "./route.js";

export interface ExplainHop {
  step: "device" | "host-bridge" | "interconnect";
  bdf?: string;
  kind?: string;
  name?: string;
  role?: string;
  direction?: string;
  acs?: { cap: string[]; ctrl: string[]; redirect: boolean } | null;
  link?: {
    speed: number;
    width: number;
    maxSpeed: number;
    maxWidth: number;
    lineRateGBps: number;
    degraded?: string;
  } | null;
  label?: string;
}

export interface AcsFix {
  /** Ports whose RR/CR/EC would have to be cleared. */
  ports: { bdf: string; ctrlNow: string[]; ctrlAfter: string[]; setpci: string }[];
  kernelParameter: string;
  /** Groups that would merge as the price (before → after). */
  groupsBefore: number;
  groupsAfter: number;
  merged: string[][];
}

export interface Explanation {
  provider: string;
  client: string;
  mapType: MapVerdict["type"];
  distance: number | null;
  pathType: PathType;
  summary: string;
  rules: string[];
  kernelLog: string[];
  hops: ExplainHop[];
  performance: Pick<PathPerformance, "bandwidthGBps" | "effectiveGBps" | "limit" | "pattern"> | null;
  cpu: { vendor: string; family: number; source: string; assumed: boolean };
  fix: AcsFix | string | null;
}

const REDIRECT = PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC;

function acsOf(d: PciDev): ExplainHop["acs"] {
  if (!d.acsCapOffset) return null;
  return {
    cap: acsBitNames(d.acsCapReg),
    ctrl: acsBitNames(d.acsCtrlReg),
    redirect: (d.acsCtrlReg & REDIRECT) !== 0,
  };
}

/** What clearing the redirect bits on the ACS path would give, and what it costs in isolation. */
function acsFix(m: Machine, v: MapVerdict): AcsFix {
  const before = groupsAsBdfs(computeIommuGroups(m.fabric));
  const saved = v.acsPath.map((d) => d.acsCtrlReg);
  const ports = v.acsPath.map((d) => {
    const after = d.acsCtrlReg & ~REDIRECT;
    return {
      bdf: d.bdf,
      ctrlNow: acsBitNames(d.acsCtrlReg),
      ctrlAfter: acsBitNames(after),
      setpci: `setpci -s ${d.bdf} ECAP_ACS+0x6.w=${after.toString(16).padStart(4, "0")}`,
    };
  });
  let after: { id: number; devices: string[] }[];
  try {
    for (const d of v.acsPath) d.setAcsCtrl(d.acsCtrlReg & ~REDIRECT);
    after = groupsAsBdfs(computeIommuGroups(m.fabric));
  } finally {
    for (const [i, d] of v.acsPath.entries()) d.setAcsCtrl(saved[i]);
  }
  const merged = after
    .filter((g) => !before.some((b) => b.devices.join() === g.devices.join()))
    .map((g) => g.devices);
  return {
    ports,
    kernelParameter: `pci=disable_acs_redir=${v.acsPath.map((d) => d.bdf).join(";")}`,
    groupsBefore: before.length,
    groupsAfter: after.length,
    merged,
  };
}

export function explain(m: Machine, provider: PciDev, client: PciDev): Explanation {
  // verbose: the same calculation with the kernel's log lines
  const v = calcMapTypeAndDist(provider, client, m.cpu, { verbose: true, whitelist: m.kernel.whitelist });
  const r = route(provider, client);
  const perf = provider === client ? null : pathPerformance(client, provider);
  const linkOf = new Map(perf?.links.map((l) => [l.lower, l]) ?? []);
  const hops: ExplainHop[] = r.steps.map((s) => {
    if (s.kind === "host-bridge")
      return { step: "host-bridge", label: s.hostBridge.label, bdf: s.hostBridge.identityDevice?.bdf };
    if (s.kind === "interconnect") return { step: "interconnect", label: `${s.from.label} ↔ ${s.to.label}` };
    const l = linkOf.get(s.dev);
    return {
      step: "device",
      bdf: s.dev.bdf,
      kind: s.dev.kind,
      name: s.dev.name,
      role: s.role,
      direction: s.direction,
      acs: acsOf(s.dev),
      link: l
        ? {
            speed: l.speed,
            width: l.width,
            maxSpeed: l.maxSpeed,
            maxWidth: l.maxWidth,
            lineRateGBps: Math.round(l.lineRateGBps * 1000) / 1000,
            degraded: l.degraded,
          }
        : null,
    };
  });
  const rules = v.reasons.map(describeReason);
  rules.push(
    v.type === "BUS_ADDR"
      ? "→ BUS_ADDR: the client uses PCI bus addresses (BAR CPU address + host-bridge offset); the IOMMU is not used"
      : v.type === "THRU_HOST_BRIDGE"
        ? "→ THRU_HOST_BRIDGE: traffic goes through the root complex and is mapped through the client's IOMMU like normal DMA"
        : "→ NOT_SUPPORTED: a dma-buf map for this client fails (-EINVAL from dma_buf_phys_vec_to_sgt; the older pci_p2pdma_map_sg path gives -EREMOTEIO)",
  );
  let fix: Explanation["fix"] = null;
  if (v.type !== "BUS_ADDR") {
    if (v.acsPath.length) fix = acsFix(m, v);
    else if (v.type === "NOT_SUPPORTED")
      fix =
        "no switch or root port is shared: place both devices below one switch, use an allow-listed host bridge, or an AMD Zen host";
  }
  return {
    provider: provider.bdf,
    client: client.bdf,
    mapType: v.type,
    distance: v.type === "NOT_SUPPORTED" ? null : v.dist,
    pathType: pathType(provider, client),
    summary: verdictSummary(v, provider === client),
    rules,
    kernelLog: v.log,
    hops,
    performance: perf
      ? {
          bandwidthGBps: perf.bandwidthGBps,
          effectiveGBps: perf.effectiveGBps,
          limit: perf.limit,
          pattern: perf.pattern,
        }
      : null,
    cpu: { vendor: m.cpu.vendor, family: m.cpu.family, source: m.cpu.source, assumed: m.cpuAssumed },
    fix,
  };
}
