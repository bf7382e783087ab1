/**
 * `calc_map_type_and_dist` (kernel-semantics §2.2): whether and how a client can reach a
 * provider's BAR by peer-to-peer DMA, the kernel's distance, and every rule that decided, as data.
 */
import type { PciDev } from "../pci/device.js";
import { type CpuInfo, Fabric } from "../pci/fabric.js";
import { type AcsBitName, acsBitNames, PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR } from "../pci/regs.js";
import {
  cpuSupportsP2pdma,
  describeFact,
  HOST_BRIDGE_WHITELIST_6_19,
  type HostBridgeCheck,
  type HostBridgeFact,
  hostBridgeWhitelist,
  pciIdOf,
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

export interface CalcOptions {
  verbose?: boolean;
  whitelist?: readonly WhitelistEntry[];
}

const REDIRECT_BITS = PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC;

/** Device has an ACS capability with RR, CR or EC enabled. */
function acsRedirect(d: PciDev): boolean {
  return (d.acsCtrlReg & REDIRECT_BITS) !== 0;
}

function cpuLabel(cpu: CpuInfo): string {
  return `${cpu.vendor} family 0x${cpu.family.toString(16)}${cpu.modelName ? ` (${cpu.modelName})` : ""}`;
}

/**
 * The outcome of `calc_map_type_and_dist`: the kernel's two results plus the raw facts that decided
 * them. `reasons` turns the facts into data for people on demand (the hot path never builds it).
 */
export class MapVerdict {
  private reasonsCache: P2pReason[] | null = null;
  constructor(
    readonly type: MapType,
    readonly dist: number,
    readonly provider: PciDev,
    readonly client: PciDev,
    /** Common upstream bridge (the device itself for provider == client), null when none. */
    readonly commonAncestor: PciDev | null,
    readonly acsRedirects: boolean,
    /** Nodes with an ACS redirect counted on the way (the kernel's `disable_acs_redir=` list). */
    readonly acsPath: PciDev[],
    readonly cpu: CpuInfo,
    readonly cpuAllows: boolean,
    /** Allow-list lookups made (none when the CPU rule or BUS_ADDR decided). */
    readonly hostBridgeFacts: HostBridgeFact[],
    /** Kernel log lines this calculation prints when verbose. */
    readonly log: string[],
  ) {}

  get reasons(): P2pReason[] {
    if (this.reasonsCache) return this.reasonsCache;
    const out: P2pReason[] = [];
    const c = this.commonAncestor;
    if (c) out.push({ kind: "common-upstream-bridge", ancestor: c.bdf, ancestorKind: c.kind });
    else
      out.push({
        kind: "no-common-upstream-bridge",
        providerRoot: this.provider.hostBridge.label,
        clientRoot: this.client.hostBridge.label,
      });
    for (const d of this.acsPath) {
      const side =
        d === c
          ? c === this.provider && c === this.client
            ? "provider"
            : "common"
          : this.providerSide(d)
            ? "provider"
            : "client";
      out.push({ kind: "acs-redirect", at: d.bdf, ctrl: acsBitNames(d.acsCtrlReg & REDIRECT_BITS), side });
    }
    if (this.type !== "BUS_ADDR") {
      out.push({
        kind: this.cpuAllows ? "cpu-allows-p2p" : "cpu-does-not-allow-p2p",
        cpu: cpuLabel(this.cpu),
      });
      for (const f of this.hostBridgeFacts) out.push({ kind: "host-bridge", check: describeFact(f) });
    }
    this.reasonsCache = out;
    return out;
  }

  private providerSide(d: PciDev): boolean {
    for (let a: PciDev | null = this.provider; a && a !== this.commonAncestor; a = Fabric.upstreamBridge(a))
      if (a === d) return true;
    return false;
  }
}

export function calcMapTypeAndDist(
  provider: PciDev,
  client: PciDev,
  cpu: CpuInfo,
  opts: CalcOptions = {},
): MapVerdict {
  const up = Fabric.upstreamBridge;
  let common: PciDev | null = null;
  let distA = 0;
  let distB = 0;
  let providerAcs: PciDev[] | null = null;

  outer: for (let a: PciDev | null = provider; a; a = up(a), distA++) {
    distB = 0;
    for (let bb: PciDev | null = client; bb; bb = up(bb), distB++) {
      if (bb === a) {
        common = a;
        break outer;
      }
    }
    // checked before the comparison in the kernel; only matters when a common ancestor exists
    if (acsRedirect(a)) {
      providerAcs ??= [];
      providerAcs.push(a);
    }
  }
  const dist = distA + distB;
  const log: string[] = [];
  let acsPath: PciDev[] = [];
  let acsRedirects = false;

  if (common) {
    if (providerAcs) acsPath = providerAcs;
    // The ancestor itself was checked in the outer loop (before the comparison).
    if (acsRedirect(common)) acsPath.push(common);
    for (let bb: PciDev | null = client; bb && bb !== common; bb = up(bb))
      if (acsRedirect(bb)) acsPath.push(bb);
    if (acsPath.length === 0)
      return new MapVerdict("BUS_ADDR", dist, provider, client, common, false, acsPath, cpu, false, [], log);
    acsRedirects = true;
    if (opts.verbose) {
      log.push(`${client.bdf}: ACS redirect is set between the client and provider (${provider.bdf})`);
      log.push(
        `${client.bdf}: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=${acsPath.map((d) => d.bdf).join(";")}`,
      );
    }
  }

  let type: MapType = "THRU_HOST_BRIDGE";
  const cpuAllows = cpuSupportsP2pdma(cpu);
  let facts: HostBridgeFact[] = [];
  if (!cpuAllows) {
    const wl = hostBridgeWhitelist(provider, client, opts.whitelist ?? HOST_BRIDGE_WHITELIST_6_19);
    facts = wl.facts;
    if (!wl.ok) {
      type = "NOT_SUPPORTED";
      const failed = wl.facts.find((f) => !f.ok);
      // __host_bridge_whitelist warns only when asked to (ACS redirects) and only for an unknown id
      if (acsRedirects && opts.verbose && failed?.identity && !failed.entry)
        log.push(`${failed.identity.bdf}: Host bridge not in P2PDMA whitelist: ${pciIdOf(failed.identity)}`);
      if (opts.verbose)
        log.push(
          `${client.bdf}: cannot be used for peer-to-peer DMA as the client and provider (${provider.bdf}) do not share an upstream bridge or whitelisted host bridge`,
        );
    }
  }
  return new MapVerdict(
    type,
    dist,
    provider,
    client,
    common,
    acsRedirects,
    acsPath,
    cpu,
    cpuAllows,
    facts,
    log,
  );
}
