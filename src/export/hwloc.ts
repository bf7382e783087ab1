/**
 * The fabric as hwloc v2 XML (I/O objects only, like `lstopo --of xml` with whole-io): host
 * bridges are `Bridge` objects with `bridge_type="0-1"`, PCI-PCI bridges `1-1`, functions
 * `PCIDev`, each with `pci_busid`, `pci_type` and `pci_link_speed` in GB/s.
 */
import type { PciBus, PciDev } from "../pci/device.js";
import type { Fabric } from "../pci/fabric.js";
import { lineRate } from "../perf/link.js";
import { renderXml, type XmlNode, xmlNode } from "./xml.js";

const h = (n: number, w: number) => n.toString(16).padStart(w, "0");

function busRange(bus: PciBus): string {
  let max = bus.number;
  const walk = (b: PciBus) => {
    for (const c of b.children) {
      max = Math.max(max, c.number);
      walk(c);
    }
  };
  walk(bus);
  return `${h(bus.segment, 4)}:[${h(bus.number, 2)}-${h(max, 2)}]`;
}

export function exportHwlocXml(f: Fabric): string {
  let gp = 2;
  const fn = (d: PciDev): XmlNode => {
    const sub = d.config.read16(0x2c);
    const attrs: Record<string, string | number | undefined> = {
      gp_index: gp++,
      pci_busid: d.bdf,
      pci_type: `${h(d.classCode >> 8, 4)} [${h(d.vendor, 4)}:${h(d.device, 4)}] [${h(sub, 4)}:${h(d.config.read16(0x2e), 4)}] ${h(d.revision, 2)}`,
    };
    const l = d.link;
    if (l?.speed && l.width) attrs.pci_link_speed = lineRate(l.speed, l.width).toFixed(6);
    if (d.subordinate) {
      return xmlNode(
        "object",
        { type: "Bridge", ...attrs, bridge_type: "1-1", depth: 0, bridge_pci: busRange(d.subordinate) },
        d.subordinate.devices.map(fn),
      );
    }
    return xmlNode("object", { type: "PCIDev", ...attrs });
  };
  const bridges = f.hostBridges.map((hb) =>
    xmlNode(
      "object",
      { type: "Bridge", gp_index: gp++, bridge_type: "0-1", depth: 0, bridge_pci: busRange(hb.rootBus) },
      hb.rootBus.devices.map(fn),
    ),
  );
  const machine = xmlNode("object", { type: "Machine", os_index: 0, gp_index: 1 }, bridges);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE topology SYSTEM "hwloc2.dtd">\n${renderXml(xmlNode("topology", { version: "2.0" }, [machine]))}`;
}
