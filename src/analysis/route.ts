/** The route a peer-to-peer transfer takes through the fabric, node by node. */
import type { HostBridge, PciDev } from "../pci/device.js";
import { Fabric } from "../pci/fabric.js";

export type RouteStep =
  | {
      kind: "device";
      dev: PciDev;
      role: "provider" | "client" | "bridge" | "common-ancestor";
      direction: "up" | "down" | "here";
    }
  | { kind: "host-bridge"; hostBridge: HostBridge }
  | { kind: "interconnect"; from: HostBridge; to: HostBridge };

export interface Route {
  steps: RouteStep[];
  commonAncestor: PciDev | null;
  hostBridges: HostBridge[];
}

/** Bridges above `dev`, nearest first (a VF's are its PF's). */
function chain(dev: PciDev): PciDev[] {
  return [dev, ...Fabric.pathToRoot(dev)];
}

export function route(provider: PciDev, client: PciDev): Route {
  const pc = chain(provider);
  const cc = chain(client);
  const inClient = new Set(cc);
  const common = pc.find((d) => inClient.has(d)) ?? null;
  const steps: RouteStep[] = [];
  if (common) {
    const up = pc.slice(0, pc.indexOf(common));
    const down = cc.slice(0, cc.indexOf(common)).reverse();
    if (provider === client) {
      steps.push({ kind: "device", dev: provider, role: "provider", direction: "here" });
      return { steps, commonAncestor: common, hostBridges: [] };
    }
    for (const [i, d] of up.entries())
      steps.push({ kind: "device", dev: d, role: i === 0 ? "provider" : "bridge", direction: "up" });
    const role = common === provider ? "provider" : common === client ? "client" : "common-ancestor";
    steps.push({ kind: "device", dev: common, role, direction: "here" });
    for (const [i, d] of down.entries())
      steps.push({
        kind: "device",
        dev: d,
        role: i === down.length - 1 ? "client" : "bridge",
        direction: "down",
      });
    return { steps, commonAncestor: common, hostBridges: [] };
  }
  for (const [i, d] of pc.entries())
    steps.push({ kind: "device", dev: d, role: i === 0 ? "provider" : "bridge", direction: "up" });
  const ha = provider.hostBridge;
  const hb = client.hostBridge;
  steps.push({ kind: "host-bridge", hostBridge: ha });
  if (ha !== hb) {
    steps.push({ kind: "interconnect", from: ha, to: hb });
    steps.push({ kind: "host-bridge", hostBridge: hb });
  }
  const down = [...cc].reverse();
  for (const [i, d] of down.entries())
    steps.push({
      kind: "device",
      dev: d,
      role: i === down.length - 1 ? "client" : "bridge",
      direction: "down",
    });
  return { steps, commonAncestor: null, hostBridges: ha === hb ? [ha] : [ha, hb] };
}
