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

const idOf = (d: PciDev) =>
  `${d.vendor.toString(16).padStart(4, "0")}:${d.device.toString(16).padStart(4, "0")}`;

export function hostBridgeEntryCheck(
  hb: HostBridge,
  same: boolean,
  table: readonly WhitelistEntry[] = HOST_BRIDGE_WHITELIST_6_19,
): HostBridgeCheck {
  const root = hb.identityDevice;
  if (!root) return { ok: false, hostBridge: hb.label, why: "no-identity-device" };
  const e = table.find((x) => x.vendor === root.vendor && x.device === root.device);
  if (!e) return { ok: false, hostBridge: hb.label, why: "not-listed", identity: root.bdf, id: idOf(root) };
  if (e.reqSameHostBridge && !same)
    return {
      ok: false,
      hostBridge: hb.label,
      why: "requires-same-host-bridge",
      identity: root.bdf,
      id: idOf(root),
      entry: e.name,
    };
  return { ok: true, hostBridge: hb.label, identity: root.bdf, id: idOf(root), entry: e.name, same };
}

/** `host_bridge_whitelist(a, b)`: the result and the checks behind it (one per host bridge). */
export function hostBridgeWhitelist(
  a: PciDev,
  b: PciDev,
  table: readonly WhitelistEntry[] = HOST_BRIDGE_WHITELIST_6_19,
): { ok: boolean; checks: HostBridgeCheck[] } {
  const ha = a.hostBridge;
  const hb = b.hostBridge;
  if (ha === hb) {
    const c = hostBridgeEntryCheck(ha, true, table);
    return { ok: c.ok, checks: [c] };
  }
  const ca = hostBridgeEntryCheck(ha, false, table);
  // The kernel's `&&` short-circuits: B's bridge is only looked at when A's passed.
  if (!ca.ok) return { ok: false, checks: [ca] };
  const cb = hostBridgeEntryCheck(hb, false, table);
  return { ok: cb.ok, checks: [ca, cb] };
}
