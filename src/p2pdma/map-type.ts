/**
 * `calc_map_type_and_dist` (kernel-semantics §2.2): whether and how a client can reach a
 * provider's BAR by peer-to-peer DMA, the kernel's distance, and every rule that decided, as data.
 */
import type { PciDev } from "../pci/device.js";
import { type CpuInfo, Fabric } from "../pci/fabric.js";
import { type AcsBitName, acsBitNames, PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR } from "../pci/regs.js";
import {
  cpuSupportsP2pdma,
  HOST_BRIDGE_WHITELIST_6_19,
  type HostBridgeCheck,
  hostBridgeWhitelist,
  type WhitelistEntry,
} from "./whitelist.js";

export type MapType = "NOT_SUPPORTED" | "BUS_ADDR" | "THRU_HOST_BRIDGE";

/** `enum pci_p2pdma_map_type` (K-6). */
export const PCI_P2PDMA_MAP = {
  UNKNOWN: 0,
  NONE: 1,
  NOT_SUPPORTED: 2,
  BUS_ADDR: 3,
  THRU_HOST_BRIDGE: 4,
} as const;

/** One rule that took part in a verdict. The CLI, `explain` and JSON render these. */
export type P2pReason =
  | { kind: "common-upstream-bridge"; ancestor: string; ancestorKind: string }
  | { kind: "no-common-upstream-bridge"; providerRoot: string; clientRoot: string }
  | { kind: "acs-redirect"; at: string; ctrl: AcsBitName[]; side: "provider" | "client" | "common" }
  | { kind: "cpu-allows-p2p"; cpu: string }
  | { kind: "cpu-does-not-allow-p2p"; cpu: string }
  | { kind: "host-bridge"; check: HostBridgeCheck };

export interface MapVerdict {
  type: MapType;
  dist: number;
  /** Common upstream bridge (or the device itself for provider == client), null when none. */
  commonAncestor: PciDev | null;
  acsRedirects: boolean;
  /** Nodes with an ACS redirect counted on the way (the kernel's `disable_acs_redir=` list). */
  acsPath: PciDev[];
  reasons: P2pReason[];
  /** Kernel log lines this calculation prints when verbose. */
  log: string[];
}

export interface CalcOptions {
  verbose?: boolean;
  whitelist?: readonly WhitelistEntry[];
}

const REDIRECT_BITS = PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC;

/** Device has an ACS capability with RR, CR or EC enabled. */
function acsRedirect(d: PciDev): boolean {
  return d.acsCapOffset !== 0 && (d.acsCtrlReg & REDIRECT_BITS) !== 0;
}

function cpuLabel(cpu: CpuInfo): string {
  return `${cpu.vendor} family 0x${cpu.family.toString(16)}${cpu.modelName ? ` (${cpu.modelName})` : ""}`;
}

export function calcMapTypeAndDist(
  provider: PciDev,
  client: PciDev,
  cpu: CpuInfo,
  opts: CalcOptions = {},
): MapVerdict {
  const up = Fabric.upstreamBridge;
  const reasons: P2pReason[] = [];
  const log: string[] = [];
  const acsPath: PciDev[] = [];
  let type: MapType = "THRU_HOST_BRIDGE";
  let acsRedirects = false;
  let common: PciDev | null = null;
  let distA = 0;
  let distB = 0;
  const countAcs = (d: PciDev, side: "provider" | "client" | "common") => {
    if (!acsRedirect(d)) return;
    acsPath.push(d);
    reasons.push({ kind: "acs-redirect", at: d.bdf, ctrl: acsBitNames(d.acsCtrlReg & REDIRECT_BITS), side });
  };

  outer: for (let a: PciDev | null = provider; a; a = up(a), distA++) {
    distB = 0;
    const pendingAcs = acsRedirect(a);
    for (let bb: PciDev | null = client; bb; bb = up(bb), distB++) {
      if (bb === a) {
        common = a;
        break outer;
      }
    }
    if (pendingAcs) countAcs(a, "provider");
  }

  if (common) {
    // The ancestor itself was checked in the outer loop (before the comparison).
    if (acsRedirect(common))
      countAcs(common, common === provider && common === client ? "provider" : "common");
    for (let bb: PciDev | null = client; bb && bb !== common; bb = up(bb)) countAcs(bb, "client");
    reasons.unshift({ kind: "common-upstream-bridge", ancestor: common.bdf, ancestorKind: common.kind });
    if (acsPath.length === 0) {
      return {
        type: "BUS_ADDR",
        dist: distA + distB,
        commonAncestor: common,
        acsRedirects,
        acsPath,
        reasons,
        log,
      };
    }
    acsRedirects = true;
    if (opts.verbose) {
      log.push(`${client.bdf}: ACS redirect is set between the client and provider (${provider.bdf})`);
      log.push(
        `${client.bdf}: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=${acsPath.map((d) => d.bdf).join(";")}`,
      );
    }
  } else {
    reasons.unshift({
      kind: "no-common-upstream-bridge",
      providerRoot: provider.hostBridge.label,
      clientRoot: client.hostBridge.label,
    });
    // Only the provider-side redirects are collected when there is no common ancestor, and they do
    // not matter: the transfer goes through the host bridge anyway. Keep the verdict's list honest.
    acsPath.length = 0;
    for (let i = reasons.length - 1; i >= 0; i--)
      if (reasons[i].kind === "acs-redirect") reasons.splice(i, 1);
  }
  const dist = distA + distB;

  if (cpuSupportsP2pdma(cpu)) {
    reasons.push({ kind: "cpu-allows-p2p", cpu: cpuLabel(cpu) });
  } else {
    reasons.push({ kind: "cpu-does-not-allow-p2p", cpu: cpuLabel(cpu) });
    const wl = hostBridgeWhitelist(provider, client, opts.whitelist ?? HOST_BRIDGE_WHITELIST_6_19);
    for (const c of wl.checks) reasons.push({ kind: "host-bridge", check: c });
    if (!wl.ok) {
      type = "NOT_SUPPORTED";
      const failed = wl.checks.find((c) => !c.ok);
      if (acsRedirects && opts.verbose && failed && !failed.ok && failed.why === "not-listed")
        log.push(`${failed.identity}: Host bridge not in P2PDMA whitelist: ${failed.id}`);
      if (opts.verbose)
        log.push(
          `${client.bdf}: cannot be used for peer-to-peer DMA as the client and provider (${provider.bdf}) do not share an upstream bridge or whitelisted host bridge`,
        );
    }
  }
  return { type, dist, commonAncestor: common, acsRedirects, acsPath, reasons, log };
}
