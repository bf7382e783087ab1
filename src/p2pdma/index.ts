export * from "./map-type.js";
export * from "./p2pdma.js";
export * from "./whitelist.js";

import type { PciDev } from "../pci/device.js";
import type { CpuInfo } from "../pci/fabric.js";
import type { DmaClient } from "./p2pdma.js";
import { P2pdma } from "./p2pdma.js";

/** Convenience: `pci_p2pdma_distance_many` on a fresh state (no cache, not verbose). */
export function distanceMany(provider: PciDev, clients: DmaClient[], cpu: CpuInfo, verbose = false): number {
  return new P2pdma({ cpu }).distanceMany(provider, clients, verbose);
}
