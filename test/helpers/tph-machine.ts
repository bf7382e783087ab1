/**
 * A small machine for the TPH tests: a host bridge, optionally one Root Port with a chosen raw
 * DevCap2 TPH completer field, and one function below it (or on the root bus) with a TPH
 * requester capability and optionally MSI-X with its table in BAR0.
 */

import {
  buildConfigSpace,
  type CapabilityHelper,
  type MsixCapParams,
  msixCap,
  pcieCap,
  type TphRequesterParams,
  tphRequesterCap,
} from "../../src/pci/capabilities.js";
import { HostBridge, IORESOURCE_MEM } from "../../src/pci/device.js";
import { Fabric } from "../../src/pci/fabric.js";
import { PCI_EXP_DEVCAP2, PCI_EXP_TYPE, type PciDev } from "../../src/pci/index.js";
import { TphCore, type TphCoreOptions } from "../../src/pci/tph.js";

export interface TphMachineParams {
  /** Raw DevCap2[13:12] of the Root Port (0..3); null: the function sits on the root bus, no Root Port. */
  rpCompleter?: number | null;
  /** PCIe type of the function (default Endpoint). */
  type?: number;
  /** The function's own DevCap2[13:12] (raw). */
  completer?: number;
  tph?: TphRequesterParams | null;
  msix?: MsixCapParams;
  core?: TphCoreOptions;
}

export interface TphMachine {
  fabric: Fabric;
  rp: PciDev | null;
  dev: PciDev;
  core: TphCore;
  /** Offset of the function's TPH capability. */
  cap: number;
}

export const BAR0 = 0xf000_0000n;

export function setCompleterField(d: PciDev, field: number): void {
  const o = d.pcieCapOffset + PCI_EXP_DEVCAP2;
  d.config.write32(o, (d.config.read32(o) & ~0x3000) | ((field & 3) << 12));
}

export function tphMachine(p: TphMachineParams = {}): TphMachine {
  const fabric = new Fabric();
  const hb = fabric.addHostBridge(new HostBridge(0, 0));
  let rp: PciDev | null = null;
  let bus = hb.rootBus;
  const rpCompleter = p.rpCompleter === undefined ? 1 : p.rpCompleter;
  if (rpCompleter !== null) {
    const cfg = buildConfigSpace({ vendor: 0x8086, device: 0x1234, classCode: 0x060400, headerType: 1 }, [
      pcieCap({ type: PCI_EXP_TYPE.ROOT_PORT, link: { speed: 16, width: 16 } }),
    ]);
    rp = fabric.addFunction(hb.rootBus, 0x08, cfg);
    setCompleterField(rp, rpCompleter);
    bus = fabric.addSecondaryBus(rp, 1);
  }
  const type = p.type ?? PCI_EXP_TYPE.ENDPOINT;
  const caps: CapabilityHelper[] = [];
  if (p.msix) caps.push(msixCap(p.msix));
  caps.push(pcieCap({ type, link: type === PCI_EXP_TYPE.RC_END ? undefined : { speed: 16, width: 16 } }));
  if (p.tph !== null)
    caps.push(tphRequesterCap(p.tph ?? { deviceSpecificMode: true, stTable: "cap", stTableSize: 64 }));
  const cfg = buildConfigSpace({ vendor: 0x15b3, device: 0x1021, classCode: 0x020000, headerType: 0 }, caps);
  const dev = fabric.addFunction(bus, rpCompleter === null ? 0x10 : 0, cfg);
  if (p.completer !== undefined) setCompleterField(dev, p.completer);
  if (p.msix) {
    dev.resources[0] = { index: 0, flags: IORESOURCE_MEM, start: BAR0, len: 0x4000n };
    dev.programBar(0);
  }
  const core = new TphCore(fabric, p.core);
  return { fabric, rp, dev, core, cap: core.tphCap(dev) };
}
