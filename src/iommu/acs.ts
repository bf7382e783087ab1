/** ACS evaluation for IOMMU isolation (kernel-semantics §11.2). */
import type { PciDev } from "../pci/device.js";
import { PCI_ACS_EC, PCI_EXP_TYPE } from "../pci/regs.js";
import { type AcsQuirk, acsQuirkAnswer } from "./acs-quirks.js";

export interface AcsOptions {
  quirks?: readonly AcsQuirk[];
}

/**
 * `pci_acs_flags_enabled`: controls the capability does not implement count as enabled
 * (hard-wired), except EC (K-182).
 */
export function acsFlagsEnabled(dev: PciDev, flags: number): boolean {
  if (!dev.acsCapOffset) return false;
  const f = flags & (dev.acsCapReg | PCI_ACS_EC);
  return (dev.acsCtrlReg & f) === f;
}

/** Which rule decided `pci_acs_enabled` — kept so `explain` can say why a port does not isolate. */
export type AcsDecision =
  | { rule: "quirk-override"; enabled: boolean }
  | { rule: "quirk-table"; enabled: boolean }
  | { rule: "not-pcie"; enabled: false }
  | { rule: "bridge-type-never"; enabled: false }
  | { rule: "port-acs"; enabled: boolean; missing: number }
  | { rule: "multifunction-acs"; enabled: boolean; missing: number }
  | { rule: "single-function"; enabled: true };

export function pciAcsDecision(dev: PciDev, flags: number, opts: AcsOptions = {}): AcsDecision {
  if (dev.acsQuirk !== undefined) return { rule: "quirk-override", enabled: dev.acsQuirk };
  const q = acsQuirkAnswer(dev, flags, opts.quirks);
  if (q !== undefined) return { rule: "quirk-table", enabled: q };
  const t = dev.pcieType;
  if (t === null) return { rule: "not-pcie", enabled: false };
  const missing = () => {
    if (!dev.acsCapOffset) return flags;
    const f = flags & (dev.acsCapReg | PCI_ACS_EC);
    return f & ~dev.acsCtrlReg;
  };
  switch (t) {
    case PCI_EXP_TYPE.PCIE_BRIDGE:
    case PCI_EXP_TYPE.PCI_BRIDGE:
    case PCI_EXP_TYPE.RC_EC:
      return { rule: "bridge-type-never", enabled: false };
    case PCI_EXP_TYPE.DOWNSTREAM:
    case PCI_EXP_TYPE.ROOT_PORT:
      return { rule: "port-acs", enabled: acsFlagsEnabled(dev, flags), missing: missing() };
  }
  if (
    (t === PCI_EXP_TYPE.ENDPOINT ||
      t === PCI_EXP_TYPE.UPSTREAM ||
      t === PCI_EXP_TYPE.LEG_END ||
      t === PCI_EXP_TYPE.RC_END) &&
    dev.multifunction
  )
    return { rule: "multifunction-acs", enabled: acsFlagsEnabled(dev, flags), missing: missing() };
  return { rule: "single-function", enabled: true };
}

/** `pci_acs_enabled(dev, flags)`. */
export function pciAcsEnabled(dev: PciDev, flags: number, opts: AcsOptions = {}): boolean {
  return pciAcsDecision(dev, flags, opts).enabled;
}

/**
 * `pci_acs_path_enabled(start, end, flags)`: every device from `start` up through the bridges
 * above it has the controls; on reaching a root bus the answer is `end === null`.
 */
export function pciAcsPathEnabled(
  start: PciDev,
  end: PciDev | null,
  flags: number,
  opts: AcsOptions = {},
): boolean {
  let d: PciDev | null = start;
  while (d) {
    if (!pciAcsEnabled(d, flags, opts)) return false;
    if (d.bus.isRoot) return end === null;
    const here: PciDev = d;
    d = d.bus.self;
    if (here === end) return true;
  }
  return end === null;
}
