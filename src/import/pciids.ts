/**
 * The PCI ID database (`pci.ids`, the file lspci names devices with): vendor, device and class
 * names, and the reverse — ids from the names lspci printed when it was run without `-nn`.
 * The database ships as data (data/pci.ids, a copy of the pciutils/pciids file), not as code.
 */
import { readFileSync } from "node:fs";
import { packageDataPath } from "./data-dir.js";

export interface PciIdsVendor {
  id: number;
  name: string;
  devices: Map<number, string>;
}

export interface PciIdsClass {
  id: number;
  name: string;
  subclasses: Map<number, { name: string; progIfs: Map<number, string> }>;
}

const hexOf = (s: string) => Number.parseInt(s, 16);
const norm = (s: string) => s.trim().replace(/\s+/g, " ").toLowerCase();

/** Parsed `pci.ids`: lookups both ways. Unknown lines are skipped (the format grows). */
export class PciIds {
  readonly vendors = new Map<number, PciIdsVendor>();
  readonly classes = new Map<number, PciIdsClass>();
  /** The file's `Version:` header line, e.g. "2026.08.22". */
  version = "";
  private vendorsByName: Map<string, number[]> | null = null;
  private devicesByName = new Map<number, Map<string, number[]>>();

  static parse(text: string): PciIds {
    const db = new PciIds();
    let vendor: PciIdsVendor | null = null;
    let cls: PciIdsClass | null = null;
    let sub: { name: string; progIfs: Map<number, string> } | null = null;
    let inClasses = false;
    for (const raw of text.split("\n")) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (!line) continue;
      if (line[0] === "#") {
        const v = /^#\s*Version:\s*(\S+)/.exec(line);
        if (v && !db.version) db.version = v[1];
        continue;
      }
      let m = /^C ([0-9a-fA-F]{2})\s+(.*)$/.exec(line);
      if (m) {
        inClasses = true;
        vendor = null;
        cls = { id: hexOf(m[1]), name: m[2], subclasses: new Map() };
        db.classes.set(cls.id, cls);
        sub = null;
        continue;
      }
      m = /^([0-9a-fA-F]{4})\s+(.*)$/.exec(line);
      if (m) {
        inClasses = false;
        cls = null;
        vendor = { id: hexOf(m[1]), name: m[2], devices: new Map() };
        db.vendors.set(vendor.id, vendor);
        continue;
      }
      if (/^[A-Z] /.test(line)) {
        // another top-level list (device types, languages …): not ours
        inClasses = false;
        vendor = null;
        cls = null;
        continue;
      }
      m = /^\t([0-9a-fA-F]{2,4})\s+(.*)$/.exec(line);
      if (m) {
        if (inClasses && cls) {
          sub = { name: m[2], progIfs: new Map() };
          cls.subclasses.set(hexOf(m[1]), sub);
        } else if (vendor && m[1].length === 4) vendor.devices.set(hexOf(m[1]), m[2]);
        continue;
      }
      m = /^\t\t([0-9a-fA-F]{2})\s+(.*)$/.exec(line);
      if (m && inClasses && sub) sub.progIfs.set(hexOf(m[1]), m[2]);
      // \t\t subvendor subdevice lines are not needed
    }
    return db;
  }

  vendorName(vendor: number): string | undefined {
    return this.vendors.get(vendor)?.name;
  }

  deviceName(vendor: number, device: number): string | undefined {
    return this.vendors.get(vendor)?.devices.get(device);
  }

  /** The subclass name for a 16-bit class (base << 8 | sub), else the base class name. */
  className(class16: number): string | undefined {
    const c = this.classes.get((class16 >> 8) & 0xff);
    if (!c) return undefined;
    return c.subclasses.get(class16 & 0xff)?.name ?? c.name;
  }

  /** "Vendor Device" the way lspci prints it, with lspci's fallbacks for unknown ids. */
  describe(vendor: number, device: number): string {
    const h = (n: number) => n.toString(16).padStart(4, "0");
    const v = this.vendorName(vendor) ?? `Vendor ${h(vendor)}`;
    const d = this.deviceName(vendor, device) ?? `Device ${h(device)}`;
    return `${v} ${d}`;
  }

  /** Vendor ids with this exact name (case and spacing ignored). */
  vendorsNamed(name: string): number[] {
    if (!this.vendorsByName) {
      this.vendorsByName = new Map();
      for (const v of this.vendors.values()) {
        const k = norm(v.name);
        const list = this.vendorsByName.get(k);
        if (list) list.push(v.id);
        else this.vendorsByName.set(k, [v.id]);
      }
    }
    return this.vendorsByName.get(norm(name)) ?? [];
  }

  /** Device ids of `vendor` with this exact name. */
  devicesNamed(vendor: number, name: string): number[] {
    let byName = this.devicesByName.get(vendor);
    if (!byName) {
      byName = new Map();
      for (const [id, n] of this.vendors.get(vendor)?.devices ?? []) {
        const k = norm(n);
        const list = byName.get(k);
        if (list) list.push(id);
        else byName.set(k, [id]);
      }
      this.devicesByName.set(vendor, byName);
    }
    return byName.get(norm(name)) ?? [];
  }

  /**
   * Splits what lspci printed for a function ("Intel Corporation 82574L Gigabit Network
   * Connection", "NVIDIA Corporation Device 2335", "Vendor 1d0f Device efa0") into ids.
   * `ambiguous` lists the other ids the same names fit; undefined fields mean no match.
   */
  idsFromNames(text: string): { vendor?: number; device?: number; ambiguous: string[] } {
    const words = text.trim().split(/\s+/);
    const ambiguous: string[] = [];
    // The longest vendor name that is a prefix wins: "Advanced Micro Devices, Inc. [AMD/ATI]" vs "[AMD]".
    for (let i = words.length - 1; i >= 1; i--) {
      const vendorText = words.slice(0, i).join(" ");
      const deviceText = words.slice(i).join(" ");
      let vendors = this.vendorsNamed(vendorText);
      const generic = /^Vendor ([0-9a-fA-F]{4})$/.exec(vendorText);
      if (generic) vendors = [hexOf(generic[1])];
      if (!vendors.length) continue;
      const genericDev = /^Device ([0-9a-fA-F]{4})$/.exec(deviceText);
      const matches: [number, number][] = [];
      for (const v of vendors) {
        const ids = genericDev ? [hexOf(genericDev[1])] : this.devicesNamed(v, deviceText);
        for (const d of ids) matches.push([v, d]);
      }
      if (matches.length) {
        for (const [v, d] of matches.slice(1)) ambiguous.push(`${hex4(v)}:${hex4(d)}`);
        return { vendor: matches[0][0], device: matches[0][1], ambiguous };
      }
      // the vendor is known but the device name is not in this database version
      return { vendor: vendors[0], ambiguous: vendors.slice(1).map((v) => `${hex4(v)}:?`) };
    }
    return { ambiguous };
  }

  /** 16-bit class (base << 8 | sub) for a name lspci printed ("Ethernet controller", "Class 0280"). */
  classFromName(name: string): number | undefined {
    const generic = /^Class ([0-9a-fA-F]{4})$/.exec(name.trim());
    if (generic) return hexOf(generic[1]);
    const k = norm(name);
    for (const c of this.classes.values())
      for (const [sid, s] of c.subclasses) if (norm(s.name) === k) return (c.id << 8) | sid;
    // lspci prints the base-class name when the subclass is unknown to its database
    for (const c of this.classes.values()) if (norm(c.name) === k) return (c.id << 8) | 0x80;
    return undefined;
  }
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, "0");
}

let cached: PciIds | null = null;

/** Where the shipped copy lives (data/pci.ids beside src/ and dist/). */
export const PCI_IDS_FILE = packageDataPath("pci.ids");

/** The shipped database, parsed once. */
export function defaultPciIds(): PciIds {
  cached ??= PciIds.parse(readFileSync(PCI_IDS_FILE, "utf8"));
  return cached;
}
