import type { PciDev } from "../pci/device.js";

/**
 * A device that is not a PCI function (the kernel's plain `struct device`), e.g. a platform
 * device or a virtual device whose parent chain may lead to a PCI function.
 */
export class GenericDevice {
  constructor(
    readonly name: string,
    readonly parent: PciDev | GenericDevice | null = null,
  ) {}
}
