/**
 * Device-specific ACS answers (the kernel's `pci_dev_acs_enabled[]` table in drivers/pci/quirks.c),
 * kept as data. Each entry says which ACS controls the device behaves as if it had enabled,
 * although it has no (or a non-standard) ACS capability. Order matters: the first entry whose
 * match succeeds answers (kernel-semantics §11.2 step 1).
 *
 * This is the subset the spec names first (Intel RCiEPs, Intel PCH root ports, multi-function
 * NICs) plus a few root-port entries; docs/deviations.md says what is left out.
 */
import type { PciDev } from "../pci/device.js";
import {
  PCI_ACS_CR,
  PCI_ACS_DT,
  PCI_ACS_RR,
  PCI_ACS_SV,
  PCI_ACS_TB,
  PCI_ACS_UF,
  PCI_EXP_TYPE,
} from "../pci/regs.js";

export type AcsQuirkKind =
  /** `pci_quirk_rciep_acs`: any Intel RCiEP is isolated (no P2P between RCiEPs). */
  | "intel-rciep"
  /** `pci_quirk_intel_pch_acs`: PCH root ports whose isolation the kernel can switch on. */
  | "intel-pch-root-port"
  /** `pci_quirk_mf_endpoint_acs`: functions of these multi-function devices cannot reach each other. */
  | "mf-endpoint"
  /** Root ports that isolate peers without an ACS capability (Loongson, NXP, Qualcomm …). */
  | "isolated-root-port";

export interface AcsQuirk {
  vendor: number;
  /** Device id, or "any". */
  device: number | "any";
  kind: AcsQuirkKind;
  /** Controls treated as enabled. */
  grants: number;
  note: string;
}

const ISOLATED = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF;
const MF_ENDPOINT = PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF | PCI_ACS_DT;

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Intel PCH root port ids covered by `pci_quirk_intel_pch_acs`. */
export const INTEL_PCH_ROOT_PORTS: readonly number[] = [
  ...range(0x3b42, 0x3b51), // Ibex Peak
  ...range(0x1c10, 0x1c1f), // Cougar Point
  ...range(0x1e10, 0x1e1f), // Panther Point
  ...range(0x8c10, 0x8c1f), // Lynx Point-H
  ...range(0x9c10, 0x9c1b), // Lynx Point-LP
  ...range(0x9c90, 0x9c9b), // Wildcat Point
  0x1d10,
  0x1d12,
  0x1d14,
  0x1d16,
  0x1d18,
  0x1d1a,
  0x1d1c,
  0x1d1e, // Patsburg (X79)
  ...range(0x8d10, 0x8d1e), // Wellsburg (X99)
  0x8c90,
  0x8c92,
  0x8c94,
  0x8c96,
  0x8c98,
  0x8c9a,
  0x8c9c,
  0x8c9e, // 9 series
];

/** Intel multi-function NIC functions listed with `pci_quirk_mf_endpoint_acs`. */
const INTEL_MF_NICS = [
  0x10a7,
  0x10a9,
  0x10d6, // 82575
  0x1501,
  0x150e,
  0x150f,
  0x1510,
  0x1511,
  0x1516,
  0x1527, // 82580
  0x10c9,
  0x10e6,
  0x10e7,
  0x10e8,
  0x150a,
  0x150d,
  0x1518,
  0x1526, // 82576
  0x10a6,
  0x10a7,
  0x10a9, // 82575 serdes
  0x1521,
  0x1522,
  0x1523,
  0x1524, // I350
  0x105e,
  0x105f,
  0x1060,
  0x10d9,
  0x10da,
  0x10a4,
  0x10d5,
  0x10a5,
  0x10bc,
  0x107d,
  0x107e,
  0x107f, // 82571/82572
  0x10f7,
  0x10f8,
  0x10f9,
  0x10fa,
  0x10fb,
  0x10fc,
  0x1507,
  0x1514,
  0x151c,
  0x1529,
  0x152a,
  0x154d,
  0x154f,
  0x1551,
  0x1558, // 82599
  0x1528, // X540
  0x1560, // X540 1-port
  0x15b7,
  0x15b8, // I219
];

export const ACS_QUIRKS: readonly AcsQuirk[] = [
  {
    vendor: 0x8086,
    device: "any",
    kind: "intel-rciep",
    grants: ISOLATED,
    note: "Intel RCiEPs (pci_quirk_rciep_acs)",
  },
  ...INTEL_PCH_ROOT_PORTS.map(
    (device): AcsQuirk => ({
      vendor: 0x8086,
      device,
      kind: "intel-pch-root-port",
      grants: ISOLATED,
      note: "Intel PCH root port (pci_quirk_intel_pch_acs)",
    }),
  ),
  ...[...new Set(INTEL_MF_NICS)].map(
    (device): AcsQuirk => ({
      vendor: 0x8086,
      device,
      kind: "mf-endpoint",
      grants: MF_ENDPOINT,
      note: "Intel multi-function NIC",
    }),
  ),
  ...[0x16d7, 0x1750, 0x1751, 0x1752, 0x1760, 0x1761, 0x1762, 0x1763].map(
    (device): AcsQuirk => ({
      vendor: 0x14e4,
      device,
      kind: "mf-endpoint",
      grants: MF_ENDPOINT,
      note: "Broadcom multi-function NIC",
    }),
  ),
  ...[0x3038, 0x3104, 0x9083].map(
    (device): AcsQuirk => ({
      vendor: 0x1d17,
      device,
      kind: "mf-endpoint",
      grants: MF_ENDPOINT,
      note: "Zhaoxin multi-function device",
    }),
  ),
  ...[0x3c09, 0x3c19, 0x3c29, 0x7a09, 0x7a19, 0x7a29, 0x7a39, 0x7a49, 0x7a59, 0x7a69].map(
    (device): AcsQuirk => ({
      vendor: 0x0014,
      device,
      kind: "isolated-root-port",
      grants: ISOLATED,
      note: "Loongson root port",
    }),
  ),
];

const indexCache = new WeakMap<readonly AcsQuirk[], Map<number, AcsQuirk[]>>();

/** The table grouped by vendor, in table order (looked up for every ACS question). */
function byVendor(table: readonly AcsQuirk[]): Map<number, AcsQuirk[]> {
  let m = indexCache.get(table);
  if (!m) {
    m = new Map();
    for (const q of table) {
      const list = m.get(q.vendor) ?? [];
      list.push(q);
      m.set(q.vendor, list);
    }
    indexCache.set(table, m);
  }
  return m;
}

/**
 * The quirk's answer for `flags`: true/false, or undefined when no quirk applies (the kernel's
 * -ENOTTY, "ask the capability").
 */
export function acsQuirkAnswer(
  dev: PciDev,
  flags: number,
  table: readonly AcsQuirk[] = ACS_QUIRKS,
): boolean | undefined {
  const device = dev.device;
  for (const q of byVendor(table).get(dev.vendor) ?? []) {
    if (q.device !== "any" && q.device !== device) continue;
    if (q.kind === "intel-rciep" && dev.pcieType !== PCI_EXP_TYPE.RC_END) continue;
    if (q.kind === "intel-pch-root-port" && dev.pcieType !== PCI_EXP_TYPE.ROOT_PORT) continue;
    return (flags & q.grants) === flags;
  }
  return undefined;
}
