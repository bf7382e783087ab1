/**
 * The host-bridge allow-list of P2PDMA (kernel-semantics §2.2 `host_bridge_whitelist`), as data.
 * Traffic that must cross the root complex is allowed only through listed host bridges, or on
 * AMD Zen and later CPUs.
 */
import type { HostBridge, PciDev } from "../pci/device.js";
import type { CpuInfo } from "../pci/fabric.js";

export interface WhitelistEntry {
  vendor: number;
  device: number;
  /** Only peers below this same host bridge may use it (`REQ_SAME_HOST_BRIDGE`). */
  reqSameHostBridge: boolean;
  name: string;
}

/** The 6.19 table. Later trees add Intel DSA/IAX/QAT ids (variant data). */
export const HOST_BRIDGE_WHITELIST_6_19: readonly WhitelistEntry[] = [
  {
    vendor: 0x8086,
    device: 0x3c00,
    reqSameHostBridge: true,
    name: "Intel Xeon E5/Core i7 (Sandy Bridge-EP)",
  },
  {
    vendor: 0x8086,
    device: 0x3c01,
    reqSameHostBridge: true,
    name: "Intel Xeon E5/Core i7 (Sandy Bridge-EP)",
  },
  { vendor: 0x8086, device: 0x2f00, reqSameHostBridge: true, name: "Intel Xeon E5 v3 (Haswell-EP)" },
  { vendor: 0x8086, device: 0x2f01, reqSameHostBridge: true, name: "Intel Xeon E5 v3 (Haswell-EP)" },
  { vendor: 0x8086, device: 0x2030, reqSameHostBridge: false, name: "Intel Xeon Scalable (Skylake-SP)" },
  { vendor: 0x8086, device: 0x2031, reqSameHostBridge: false, name: "Intel Xeon Scalable (Skylake-SP)" },
  { vendor: 0x8086, device: 0x2032, reqSameHostBridge: false, name: "Intel Xeon Scalable (Skylake-SP)" },
  { vendor: 0x8086, device: 0x2033, reqSameHostBridge: false, name: "Intel Xeon Scalable (Skylake-SP)" },
  { vendor: 0x8086, device: 0x2020, reqSameHostBridge: false, name: "Intel Xeon Scalable (Sky Lake-E)" },
  {
    vendor: 0x8086,
    device: 0x09a2,
    reqSameHostBridge: false,
    name: "Intel Xeon Scalable 3rd gen (Ice Lake-SP)",
  },
];

/** `cpu_supports_p2pdma()`: AMD, family 0x17 (Zen) or later. */
export function cpuSupportsP2pdma(cpu: CpuInfo): boolean {
  return cpu.vendor === "AuthenticAMD" && cpu.family >= 0x17;
}

/** Raw outcome of one host bridge's allow-list lookup (no strings: this runs for every pair). */
export interface HostBridgeFact {
  hostBridge: HostBridge;
  identity: PciDev | null;
  entry: WhitelistEntry | null;
  same: boolean;
  ok: boolean;
}

export type HostBridgeCheck =
  | { ok: true; hostBridge: string; identity: string; id: string; entry: string; same: boolean }
  | { ok: false; hostBridge: string; why: "no-identity-device" }
  | { ok: false; hostBridge: string; why: "not-listed"; identity: string; id: string }
  | {
      ok: false;
      hostBridge: string;
      why: "requires-same-host-bridge";
      identity: string;
      id: string;
      entry: string;
    };

export const pciIdOf = (d: PciDev) =>
  `${d.vendor.toString(16).padStart(4, "0")}:${d.device.toString(16).padStart(4, "0")}`;

export function hostBridgeFact(
  hb: HostBridge,
  same: boolean,
  table: readonly WhitelistEntry[] = HOST_BRIDGE_WHITELIST_6_19,
): HostBridgeFact {
  const identity = hb.identityDevice;
  if (!identity) return { hostBridge: hb, identity, entry: null, same, ok: false };
  const v = identity.vendor;
  const d = identity.device;
  const entry = table.find((x) => x.vendor === v && x.device === d) ?? null;
  return { hostBridge: hb, identity, entry, same, ok: !!entry && (!entry.reqSameHostBridge || same) };
}

/** The words-ready form of a fact. */
export function describeFact(f: HostBridgeFact): HostBridgeCheck {
  const hostBridge = f.hostBridge.label;
  if (!f.identity) return { ok: false, hostBridge, why: "no-identity-device" };
  const identity = f.identity.bdf;
  const id = pciIdOf(f.identity);
  if (!f.entry) return { ok: false, hostBridge, why: "not-listed", identity, id };
  if (!f.ok)
    return { ok: false, hostBridge, why: "requires-same-host-bridge", identity, id, entry: f.entry.name };
  return { ok: true, hostBridge, identity, id, entry: f.entry.name, same: f.same };
}

/** `host_bridge_whitelist(a, b)`: the result and the facts behind it (one per host bridge looked at). */
export function hostBridgeWhitelist(
  a: PciDev,
  b: PciDev,
  table: readonly WhitelistEntry[] = HOST_BRIDGE_WHITELIST_6_19,
): { ok: boolean; facts: HostBridgeFact[] } {
  const ha = a.hostBridge;
  const hb = b.hostBridge;
  if (ha === hb) {
    const f = hostBridgeFact(ha, true, table);
    return { ok: f.ok, facts: [f] };
  }
  const fa = hostBridgeFact(ha, false, table);
  // The kernel's `&&` short-circuits: B's bridge is only looked at when A's passed.
  if (!fa.ok) return { ok: false, facts: [fa] };
  const fb = hostBridgeFact(hb, false, table);
  return { ok: fb.ok, facts: [fa, fb] };
}
