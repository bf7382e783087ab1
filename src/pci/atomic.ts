/**
 * `pci_enable_atomic_ops_to_root(dev, cap_mask)` (drivers/pci/pci.c): lets an endpoint issue
 * AtomicOp requests towards the root complex when every switch port on the way routes them, no
 * upstream port blocks them on egress, and the root port completes every size in `capMask`.
 */
import { KernelError } from "../core/errors.js";
import type { PciDev } from "./device.js";
import { PCI_EXP_DEVCAP2, PCI_EXP_DEVCTL2, PCI_EXP_TYPE } from "./regs.js";

export const PCI_EXP_DEVCAP2_ATOMIC_ROUTE = 0x40;
export const PCI_EXP_DEVCAP2_ATOMIC_COMP32 = 0x80;
export const PCI_EXP_DEVCAP2_ATOMIC_COMP64 = 0x100;
export const PCI_EXP_DEVCAP2_ATOMIC_COMP128 = 0x200;
export const PCI_EXP_DEVCTL2_ATOMIC_REQ = 0x40;
export const PCI_EXP_DEVCTL2_ATOMIC_EGRESS_BLOCK = 0x80;

export function pciEnableAtomicOpsToRoot(dev: PciDev, capMask: number): void {
  const o = dev.pcieCapOffset;
  if (!o) throw new KernelError("EINVAL", "AtomicOps: not a PCIe function");
  const t = dev.pcieType;
  if (t !== PCI_EXP_TYPE.ENDPOINT && t !== PCI_EXP_TYPE.LEG_END && t !== PCI_EXP_TYPE.RC_END)
    throw new KernelError("EINVAL", "AtomicOps: only endpoints request them");
  for (let bus = dev.bus; bus.parent; bus = bus.parent) {
    const bridge = bus.self;
    if (!bridge) break;
    const bo = bridge.pcieCapOffset;
    const cap = bo ? bridge.config.read32(bo + PCI_EXP_DEVCAP2) : 0;
    const bt = bridge.pcieType;
    if (
      (bt === PCI_EXP_TYPE.UPSTREAM || bt === PCI_EXP_TYPE.DOWNSTREAM) &&
      !(cap & PCI_EXP_DEVCAP2_ATOMIC_ROUTE)
    )
      throw new KernelError("EINVAL", `AtomicOps: ${bridge.bdf} does not route them`);
    if (bt === PCI_EXP_TYPE.ROOT_PORT && (cap & capMask) !== capMask)
      throw new KernelError("EINVAL", `AtomicOps: root port ${bridge.bdf} lacks the completer sizes`);
    if (
      bt === PCI_EXP_TYPE.UPSTREAM &&
      bo &&
      bridge.config.read16(bo + PCI_EXP_DEVCTL2) & PCI_EXP_DEVCTL2_ATOMIC_EGRESS_BLOCK
    )
      throw new KernelError("EINVAL", `AtomicOps: ${bridge.bdf} blocks them on egress`);
  }
  dev.config.write16(
    o + PCI_EXP_DEVCTL2,
    dev.config.read16(o + PCI_EXP_DEVCTL2) | PCI_EXP_DEVCTL2_ATOMIC_REQ,
  );
}
