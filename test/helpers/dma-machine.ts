/** Fabric F with an IOMMU (one group per device) and a DMA API, for the DMA and dma-buf tests. */
import { DiagnosticLog } from "../../src/core/diagnostics.js";
import type { FaultInjector } from "../../src/core/fault-inject.js";
import { DmaApi } from "../../src/dma/mapping.js";
import type { MachineInput } from "../../src/import/machine-schema.js";
import { Iommu, type IommuOptions } from "../../src/iommu/iommu.js";
import type { PciDev } from "../../src/pci/device.js";
import { type SpecF, specF } from "./spec-f.js";

export interface DmaMachine extends SpecF {
  diag: DiagnosticLog;
  iommu: Iommu;
  dma: DmaApi;
}

/**
 * Every device is its own IOMMU group (a stand-in for computeIommuGroups, so these tests do not
 * depend on group formation). EPb is dma-direct (F says so); EPc is behind the IOMMU.
 */
export function dmaMachine(
  opts: { iommu?: IommuOptions; dmaFaults?: FaultInjector; mutate?: (m: MachineInput) => void } = {},
): DmaMachine {
  const f = specF(opts.mutate);
  const ids = new Map<PciDev, number>();
  f.fabric.devices().forEach((d, i) => {
    ids.set(d, i);
  });
  const diag = new DiagnosticLog();
  const iommu = new Iommu(f.fabric, (d) => ids.get(d), opts.iommu);
  const dma = new DmaApi(iommu, diag, { faults: opts.dmaFaults });
  return { ...f, diag, iommu, dma };
}

/** EPa BAR0 CPU start (§13.0). */
export const S = 0x80_0000_0000n;
export const GiB = 1n << 30n;
