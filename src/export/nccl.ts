/**
 * The fabric as an NCCL_TOPO_FILE (`<system version="1">`): one `<cpu>` per NUMA node holding
 * the PCI trees below its root ports; a PCIe switch is one `<pci>` (its upstream port) containing
 * the devices below its downstream ports, as NCCL's own topology dumps show it.
 */
import { hex } from "../core/hex.js";
import type { PciDev } from "../pci/device.js";
import type { Fabric } from "../pci/fabric.js";
import { renderXml, type XmlNode, xmlNode } from "./xml.js";

function linkAttrs(d: PciDev): Record<string, string | number | undefined> {
  const l = d.link;
  if (!l) return {};
  const gts = l.maxSpeed || l.speed;
  return { link_speed: gts ? `${gts.toFixed(1)} GT/s PCIe` : "", link_width: l.maxWidth || l.width };
}

function pciNode(d: PciDev, children: XmlNode[]): XmlNode {
  return xmlNode(
    "pci",
    {
      busid: d.bdf,
      class: hex(d.classCode, 6),
      vendor: hex(d.vendor, 4),
      device: hex(d.device, 4),
      subsystem_vendor: hex(d.config.read16(0x2c), 4),
      subsystem_device: hex(d.config.read16(0x2e), 4),
      ...linkAttrs(d),
    },
    children,
  );
}

/** Devices below a port, with switches folded into one node each. */
function below(port: PciDev): XmlNode[] {
  const out: XmlNode[] = [];
  for (const d of port.subordinate?.devices ?? []) {
    if (d.isVirtfn) continue;
    if (d.kind === "upstream-port") {
      const inner = (d.subordinate?.devices ?? []).flatMap((dsp) =>
        dsp.subordinate ? below(dsp) : [pciNode(dsp, [])],
      );
      out.push(pciNode(d, inner));
    } else if (d.subordinate) out.push(pciNode(d, below(d)));
    else out.push(pciNode(d, []));
  }
  return out;
}

export function exportNcclTopology(f: Fabric): string {
  const byNode = new Map<number, XmlNode[]>();
  for (const hb of f.hostBridges)
    for (const d of hb.rootBus.devices) {
      if (d.kind === "host-bridge") continue;
      const node = d.numaNode >= 0 ? d.numaNode : hb.numaNode; // -1: unknown, written without numaid
      const list = byNode.get(node) ?? [];
      list.push(...(d.subordinate ? below(d) : [pciNode(d, [])]));
      byNode.set(node, list);
    }
  const cpu = f.cpu;
  const system = xmlNode(
    "system",
    { version: 1 },
    [...byNode.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([numa, kids]) =>
        xmlNode(
          "cpu",
          {
            numaid: numa >= 0 ? numa : undefined,
            arch: "x86_64",
            vendor: cpu?.vendor,
            familyid: cpu?.family,
            modelid: cpu?.model,
          },
          kids,
        ),
      ),
  );
  return `<!-- written by peerdma from machine ${f.name || "(unnamed)"} -->\n${renderXml(system)}`;
}
