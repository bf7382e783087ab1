import type { GenericDevice } from "../core/device.js";
import { PciDev } from "../pci/device.js";
import { dmaBitMask } from "./direction.js";

/** Anything the DMA API can map for: a PCI function or a plain (platform) device. */
export type DmaDevice = PciDev | GenericDevice;

export function isPciDev(dev: DmaDevice): dev is PciDev {
  return dev instanceof PciDev;
}

/**
 * `dma_get_mask(dev)`. A PCI function carries its own mask; a plain device without one gets the
 * platform-bus default of 32 bits.
 */
export function dmaMaskOf(dev: DmaDevice): bigint {
  const m = (dev as { dmaMask?: bigint }).dmaMask;
  return typeof m === "bigint" ? m : dmaBitMask(32);
}

export function deviceName(dev: DmaDevice): string {
  return isPciDev(dev) ? dev.bdf : dev.name;
}
