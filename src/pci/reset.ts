import { KernelError } from "../core/errors.js";
import type { PciDev } from "./device.js";
import { Fabric } from "./fabric.js";
import { PCI_COMMAND, PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_BCR_FLR } from "./regs.js";

/** Reset methods in the order Linux tries them (`pci_reset_fn_methods`), as far as the model knows them. */
export type ResetMethod = "flr" | "af_flr" | "pm" | "bus";

/** Methods usable on `dev` (what sysfs `reset_method` would list). */
export function resetMethods(dev: PciDev): ResetMethod[] {
  const out: ResetMethod[] = [];
  if (dev.flrCapable) out.push("flr");
  if (dev.afFlrCapable) out.push("af_flr");
  // PM reset: D3hot→D0 resets the function only when No_Soft_Reset is clear.
  if (dev.pmCapOffset && !dev.noSoftReset) out.push("pm");
  // Secondary bus reset is a function reset only when the function is alone on its bus.
  const up = Fabric.upstreamBridge(dev);
  if (up && !dev.isVirtfn && dev.bus.devices.length === 1) out.push("bus");
  return out;
}

/** What a reset did, for the event log. */
export interface ResetRecord {
  device: string;
  method: ResetMethod;
  /** Functions whose registers were reset (a bus reset touches all below the bridge). */
  affected: string[];
}

export interface ResetOptions {
  /** Model of `pci_dev_trylock` failing: the reset returns -EAGAIN (kernel-semantics §1.4). */
  lockContended?: boolean;
  method?: ResetMethod;
}

function saveState(dev: PciDev): Uint8Array {
  return new Uint8Array(dev.config.bytes.subarray(0, 0x40));
}

/** Config restore after reset: header registers (COMMAND, BARs, bus numbers) back to saved values, D0. */
function restoreState(dev: PciDev, saved: Uint8Array): void {
  dev.config.bytes.set(saved, 0);
  dev.powerState = 0;
}

/**
 * `pci_try_reset_function`: save config, reset, restore. Observable effect: registers back to the
 * saved values and D0; BCR_FLR is self-clearing. -EAGAIN when the device lock is contended,
 * -ENOTTY when the function has no reset method.
 */
export function resetFunction(dev: PciDev, opts: ResetOptions = {}): ResetRecord {
  if (opts.lockContended) throw new KernelError("EAGAIN", "pci_try_reset_function: device lock contended");
  const methods = resetMethods(dev);
  const method = opts.method ?? methods[0];
  if (!method || !methods.includes(method))
    throw new KernelError("ENOTTY", `pci_reset_function: no ${opts.method ?? "reset"} method for ${dev.bdf}`);
  const victims = method === "bus" ? functionsBelow(Fabric.upstreamBridge(dev)!) : [dev];
  const saved = victims.map(saveState);
  for (const v of victims) pulseReset(v);
  for (const [i, v] of victims.entries()) restoreState(v, saved[i]);
  if (method === "flr") {
    const o = dev.pcieCapOffset;
    dev.config.write16(o + PCI_EXP_DEVCTL, dev.config.read16(o + PCI_EXP_DEVCTL) & ~PCI_EXP_DEVCTL_BCR_FLR);
  }
  return { device: dev.bdf, method, affected: victims.map((v) => v.bdf) };
}

/**
 * `pci_reset_bus` below `bridge`: every function below is saved, reset and restored.
 */
export function resetBus(bridge: PciDev, opts: ResetOptions = {}): ResetRecord {
  if (opts.lockContended) throw new KernelError("EAGAIN", "pci_reset_bus: device lock contended");
  if (!bridge.subordinate) throw new KernelError("ENOTTY", `pci_reset_bus: ${bridge.bdf} is not a bridge`);
  const victims = functionsBelow(bridge);
  const saved = victims.map(saveState);
  for (const v of victims) pulseReset(v);
  for (const [i, v] of victims.entries()) restoreState(v, saved[i]);
  return { device: bridge.bdf, method: "bus", affected: victims.map((v) => v.bdf) };
}

/** The reset itself: decode and bus mastering off until restore, and the function's own state reset. */
function pulseReset(dev: PciDev): void {
  dev.config.write16(PCI_COMMAND, 0);
  for (const h of dev.resetHooks) h();
}

export function functionsBelow(bridge: PciDev): PciDev[] {
  const out: PciDev[] = [];
  const visit = (d: PciDev) => {
    if (!d.subordinate) return;
    for (const c of d.subordinate.devices) {
      out.push(c);
      visit(c);
    }
  };
  visit(bridge);
  return out;
}
