/**
 * The way a memory request travels: which links it crosses (and in which mode), which bridges
 * forward it, and where it turns around — inside a multi-function device, in a switch, or in the
 * root complex (P2P through the host bridge, possibly across the interconnect to another one).
 *
 * Links exist only below a Root Port or a switch Downstream Port: the hop from a Downstream Port
 * to its switch's Upstream Port is inside the switch, and Root Port to Root Port is inside the
 * root complex. A VF has no link of its own: it uses its PF's (kernel-semantics §1.3).
 */
import type { HostBridge, PciDev } from "../pci/device.js";
import { Fabric } from "../pci/fabric.js";
import { PCI_EXP_DEVCAP2, PCI_EXP_DEVCAP2_EE_PREFIX, PCI_EXP_TYPE } from "../pci/regs.js";

export interface LinkRef {
  /** The Root Port or Downstream Port above the link. */
  port: PciDev;
  /** The function below the link (a VF's PF). */
  device: PciDev;
  /** Negotiated flit mode (LnkSta2 of the function below, else of the port). */
  flit: boolean;
  name: string;
}

export interface LinkHop {
  link: LinkRef;
  direction: "up" | "down";
}

/** The physical function a function's traffic leaves through (VFs use their PF's link and MPS). */
export function physical(dev: PciDev): PciDev {
  return dev.isVirtfn && dev.physfn ? dev.physfn : dev;
}

/** `[dev, bridges above … root bus]`; a VF's bridges are its PF's. */
export function chainOf(dev: PciDev): PciDev[] {
  return [dev, ...Fabric.pathToRoot(dev)];
}

function isPortAbove(d: PciDev | null): d is PciDev {
  if (!d) return false;
  const t = d.pcieType;
  return t === PCI_EXP_TYPE.ROOT_PORT || t === PCI_EXP_TYPE.DOWNSTREAM;
}

/** The link between `dev` (its PF for a VF) and the port above it, or null (root bus, inside a switch). */
export function linkAbove(dev: PciDev): LinkRef | null {
  const lower = physical(dev);
  const port = Fabric.upstreamBridge(lower);
  if (!isPortAbove(port)) return null;
  const ls = lower.link ?? port.link;
  return { port, device: lower, flit: ls?.flit ?? false, name: `${port.bdf}↔${lower.bdf}` };
}

/** DevCap2 bit 21: End-End TLP Prefix Supported. */
export function eeTlpPrefixSupported(dev: PciDev): boolean {
  const o = dev.pcieCapOffset;
  return o !== 0 && (dev.config.read32(o + PCI_EXP_DEVCAP2) & PCI_EXP_DEVCAP2_EE_PREFIX) !== 0;
}

/** Where the request turns from going up to going down. */
export type Turn =
  | { kind: "device"; at: PciDev }
  | { kind: "switch"; at: PciDev }
  | { kind: "root-complex"; from: HostBridge; to: HostBridge | null };

/** One element of the travel, in order. */
export type RouteElem =
  | { t: "link"; hop: LinkHop }
  /** A bridge forwarding the request; `dir` up = secondary → primary (needs Bus Master Enable). */
  | { t: "bridge"; dev: PciDev; dir: "up" | "down" }
  | { t: "rc"; hostBridge: HostBridge }
  | { t: "interconnect"; from: HostBridge; to: HostBridge }
  | { t: "target"; dev: PciDev };

/** Elements from `dev` up to (not including) `stop`, or to the root complex when `stop` is null. */
export function upElems(dev: PciDev, stop: PciDev | null): RouteElem[] {
  const chain = chainOf(dev);
  const out: RouteElem[] = [];
  for (const [i, d] of chain.entries()) {
    if (d === stop) break;
    // every bridge below the turning point forwards the request from its secondary side up
    if (i > 0) out.push({ t: "bridge", dev: d, dir: "up" });
    const l = linkAbove(d);
    if (l) out.push({ t: "link", hop: { link: l, direction: "up" } });
  }
  return out;
}

/** Elements from below `start` (exclusive; null = root complex) down to `dev`, ending with the target. */
export function downElems(dev: PciDev, start: PciDev | null): RouteElem[] {
  return reverseElems(upElems(dev, start)).concat([{ t: "target", dev }]);
}

/** The same elements travelled the other way (links and bridge directions flipped). */
export function reverseElems(elems: RouteElem[]): RouteElem[] {
  return [...elems].reverse().map((e): RouteElem => {
    if (e.t === "link")
      return { t: "link", hop: { link: e.hop.link, direction: e.hop.direction === "up" ? "down" : "up" } };
    if (e.t === "bridge") return { t: "bridge", dev: e.dev, dir: e.dir === "up" ? "down" : "up" };
    if (e.t === "interconnect") return { t: "interconnect", from: e.to, to: e.from };
    return e;
  });
}

/** The common bridge of two chains (null: only the root complex joins them). */
export function commonBridge(a: PciDev, b: PciDev): PciDev | null {
  const cb = new Set(chainOf(b));
  for (const d of chainOf(a)) if (cb.has(d)) return d;
  return null;
}

/** The route of one request, as the engine resolved it. */
export interface DmaRoute {
  /** "peer": a function's BAR; "host-memory": system RAM; "none": nothing decoded (UR). */
  kind: "peer" | "host-memory" | "none";
  initiator: string;
  target: string | null;
  turn: Turn;
  /** Links crossed, in travel order. */
  links: LinkHop[];
  /** The request was translated by the initiator's IOMMU domain at the root complex. */
  translated: boolean;
  /** The Downstream Port whose ACS P2P Request Redirect sent the request to the root complex. */
  redirectedBy: string | null;
  /** "03:00.0 → [switch 01:00.0] → 04:00.0" style. */
  text: string;
  elems: RouteElem[];
}

export function turnText(t: Turn): string {
  if (t.kind === "device") return `device ${t.at.bdf}`;
  if (t.kind === "switch") return `switch ${t.at.bdf}`;
  if (t.to && t.to !== t.from) return `root complex ${t.from.label} → interconnect → ${t.to.label}`;
  return `root complex ${t.from.label}`;
}

export function routeText(
  initiator: string,
  elems: RouteElem[],
  targetLabel: string | null,
  turn?: { index: number; label: string },
): string {
  const parts = [initiator];
  for (const [i, e] of elems.entries()) {
    if (turn && i === turn.index) parts.push(`[${turn.label}]`);
    if (e.t === "bridge") parts.push(e.dev.bdf);
    else if (e.t === "rc") parts.push(`[${e.hostBridge.label}]`);
    else if (e.t === "interconnect") parts.push("[interconnect]");
    else if (e.t === "target") parts.push(e.dev.bdf);
  }
  if (targetLabel && !elems.some((e) => e.t === "target")) parts.push(targetLabel);
  return parts.join(" → ");
}
