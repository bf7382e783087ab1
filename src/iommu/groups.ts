/**
 * IOMMU group formation for PCI devices, as Linux's `pci_device_group` does it
 * (kernel-semantics §11.3): devices are added in scan order and each joins the first existing
 * group it can reach through DMA aliases, non-isolating bridges or non-isolated sibling functions,
 * else starts a new one. Group ids are numbered in creation order.
 */
import type { PciDev } from "../pci/device.js";
import type { Fabric } from "../pci/fabric.js";
import { PCI_EXP_TYPE, REQ_ACS_FLAGS } from "../pci/regs.js";
import { type AcsOptions, pciAcsEnabled, pciAcsPathEnabled } from "./acs.js";

/** Why a device ended up in its group, for `iommu-groups` and `explain`. */
export type GroupJoinReason =
  | { kind: "new-group" }
  | { kind: "dma-alias"; via: string }
  | { kind: "non-isolating-bridge"; bridge: string }
  | { kind: "sibling-function"; sibling: string }
  | { kind: "alias-of"; device: string };

export interface IommuGroup {
  id: number;
  devices: PciDev[];
}

export interface IommuGroupResult {
  groups: IommuGroup[];
  groupOf: Map<PciDev, IommuGroup>;
  reasons: Map<PciDev, GroupJoinReason>;
}

/**
 * `pci_for_each_dma_alias` from `dev` upward, stopping at the first visited device that already
 * has a group. Returns the last device visited and the group found, if any.
 */
function dmaAliasWalk(dev: PciDev, groupOf: Map<PciDev, IommuGroup>): { last: PciDev; group?: IommuGroup } {
  let last = dev;
  let g = groupOf.get(dev);
  if (g) return { last, group: g };
  for (let bus = dev.bus; !bus.isRoot; bus = bus.parent!) {
    const tmp = bus.self;
    if (!tmp) continue;
    const t = tmp.pcieType;
    if (t === PCI_EXP_TYPE.ROOT_PORT || t === PCI_EXP_TYPE.UPSTREAM || t === PCI_EXP_TYPE.DOWNSTREAM)
      continue;
    // A PCIe-to-PCI bridge, a PCI-to-PCIe bridge or a conventional bridge takes ownership of the
    // transactions it forwards: the requester id becomes the bridge's.
    last = tmp;
    g = groupOf.get(tmp);
    if (g) return { last, group: g };
  }
  return { last };
}

function devsAreDmaAliases(a: PciDev, b: PciDev): boolean {
  return a.bus === b.bus && (a.dmaAliases.includes(b.devfn) || b.dmaAliases.includes(a.devfn));
}

function aliasGroup(
  pdev: PciDev,
  seen: Set<number>,
  groupOf: Map<PciDev, IommuGroup>,
  opts: AcsOptions,
): IommuGroup | undefined {
  if (seen.has(pdev.devfn)) return undefined;
  seen.add(pdev.devfn);
  const g = groupOf.get(pdev);
  if (g) return g;
  for (const tmp of pdev.bus.devices) {
    if (tmp === pdev || !devsAreDmaAliases(pdev, tmp)) continue;
    const a = aliasGroup(tmp, seen, groupOf, opts) ?? functionAliasGroup(tmp, seen, groupOf, opts);
    if (a) return a;
  }
  return undefined;
}

/** Non-isolated functions of a multi-function slot share a group (K-181, K-199). */
function functionAliasGroup(
  pdev: PciDev,
  seen: Set<number>,
  groupOf: Map<PciDev, IommuGroup>,
  opts: AcsOptions,
): IommuGroup | undefined {
  if (!pdev.multifunction || pciAcsEnabled(pdev, REQ_ACS_FLAGS, opts)) return undefined;
  for (const tmp of pdev.bus.devices) {
    if (tmp === pdev || tmp.slot !== pdev.slot || tmp.isVirtfn) continue;
    if (pciAcsEnabled(tmp, REQ_ACS_FLAGS, opts)) continue;
    const g = aliasGroup(tmp, seen, groupOf, opts);
    if (g) return g;
  }
  return undefined;
}

/** Computes every PCI device's IOMMU group in Linux's order and numbering. */
export function computeIommuGroupsDetailed(fabric: Fabric, opts: AcsOptions = {}): IommuGroupResult {
  const groups: IommuGroup[] = [];
  const groupOf = new Map<PciDev, IommuGroup>();
  const reasons = new Map<PciDev, GroupJoinReason>();
  const join = (dev: PciDev, g: IommuGroup, why: GroupJoinReason) => {
    g.devices.push(dev);
    groupOf.set(dev, g);
    reasons.set(dev, why);
  };
  for (const dev of fabric.devices()) {
    // 1. DMA alias walk
    const walk = dmaAliasWalk(dev, groupOf);
    if (walk.group) {
      join(dev, walk.group, { kind: "dma-alias", via: walk.last.bdf });
      continue;
    }
    let p = walk.last;
    // 2. Up through bridges that do not isolate the path to the root.
    let found: IommuGroup | undefined;
    for (let bus = p.bus; !bus.isRoot; bus = bus.parent!) {
      if (!bus.self) continue;
      if (pciAcsPathEnabled(bus.self, null, REQ_ACS_FLAGS, opts)) break;
      p = bus.self;
      found = groupOf.get(p);
      if (found) break;
    }
    if (found) {
      join(dev, found, { kind: "non-isolating-bridge", bridge: p.bdf });
      continue;
    }
    // 3. Existing group among P's DMA aliases; 4. among P's non-isolated sibling functions.
    const seen = new Set<number>();
    const alias = aliasGroup(p, seen, groupOf, opts);
    if (alias) {
      join(dev, alias, { kind: "alias-of", device: p.bdf });
      continue;
    }
    const sibling = functionAliasGroup(p, seen, groupOf, opts);
    if (sibling) {
      join(dev, sibling, { kind: "sibling-function", sibling: sibling.devices[0].bdf });
      continue;
    }
    // 5. A new group (for P; `dev` joins it — P is dev itself unless a bridge owns dev's requests).
    const g: IommuGroup = { id: groups.length, devices: [] };
    groups.push(g);
    if (p !== dev && !groupOf.has(p)) {
      // The group is allocated for P, which is not yet added itself (it is added later in
      // scan order only if it is below `dev`, which cannot happen for a bridge above).
      join(dev, g, { kind: "non-isolating-bridge", bridge: p.bdf });
    } else join(dev, g, { kind: "new-group" });
  }
  return { groups, groupOf, reasons };
}

export function computeIommuGroups(fabric: Fabric, opts: AcsOptions = {}): IommuGroup[] {
  return computeIommuGroupsDetailed(fabric, opts).groups;
}

/** Members of each group as sorted BDF strings (the form sysfs lists them in). */
export function groupsAsBdfs(groups: IommuGroup[]): { id: number; devices: string[] }[] {
  return groups.map((g) => ({ id: g.id, devices: g.devices.map((d) => d.bdf).sort() }));
}
