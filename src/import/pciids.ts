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

const isHexDigit = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
/** What `\s` matches, without a regex for the ASCII ones. */
const isBlank = (c: number) =>
  c === 32 || (c >= 9 && c <= 13) || (c > 127 && /\s/.test(String.fromCharCode(c)));

/**
 * `<hex id> <blanks> <name>` in text[from, end): an id of `min`…`max` hex digits, at least one blank,
 * then the rest of the line as the name. Null when the line is not one.
 */
function idEntry(
  text: string,
  from: number,
  end: number,
  min: number,
  max: number,
): { id: number; name: string } | null {
  let i = from;
  while (i < end && i - from < max && isHexDigit(text.charCodeAt(i))) i++;
  if (i - from < min || i >= end || !isBlank(text.charCodeAt(i))) return null;
  const id = hexOf(text.slice(from, i));
  while (i < end && isBlank(text.charCodeAt(i))) i++;
  return { id, name: text.slice(i, end) };
}

/** Case and spacing ignored; the replace (an allocation) only for names that need it. */
const norm = (s: string) => {
  const t = s.trim().toLowerCase();
  return /\s\s|[^\S ]/.test(t) ? t.replace(/\s+/g, " ") : t;
};

/** Parsed `pci.ids`: lookups both ways. Unknown lines are skipped (the format grows). */
export class PciIds {
  readonly vendors = new Map<number, PciIdsVendor>();
  readonly classes = new Map<number, PciIdsClass>();
  /** The file's `Version:` header line, e.g. "2026.08.22". */
  version = "";
  private vendorsByName: Map<string, number[]> | null = null;
  private devicesByName = new Map<number, Map<string, number[]>>();

  /**
   * One pass over the lines, deciding each by its first characters: the CLI parses this 1.7 MB
   * file cold on every run that names devices, and most of its lines are subsystem entries
   * (two tabs) that no lookup needs, so those are skipped before any pattern is tried.
   */
  static parse(text: string): PciIds {
    const db = new PciIds();
    let vendor: PciIdsVendor | null = null;
    let cls: PciIdsClass | null = null;
    let sub: { name: string; progIfs: Map<number, string> } | null = null;
    let inClasses = false;
    for (let start = 0; start < text.length; ) {
      let end = text.indexOf("\n", start);
      if (end < 0) end = text.length;
      const next = end + 1;
      if (end > start && text.charCodeAt(end - 1) === 13) end--; // CRLF
      const c0 = text.charCodeAt(start);
      if (end === start) {
        // empty line
      } else if (c0 === 9 /* \t */) {
        if (text.charCodeAt(start + 1) === 9) {
          // \t\t: a class's programming interface, or a subsystem (not needed)
          if (inClasses && sub) {
            const e = idEntry(text, start + 2, end, 2, 2);
            if (e) sub.progIfs.set(e.id, e.name);
          }
        } else if (inClasses && cls) {
          const e = idEntry(text, start + 1, end, 2, 4);
          if (e) {
            sub = { name: e.name, progIfs: new Map() };
            cls.subclasses.set(e.id, sub);
          }
        } else if (vendor) {
          const e = idEntry(text, start + 1, end, 4, 4);
          if (e) vendor.devices.set(e.id, e.name);
        }
      } else if (c0 === 35 /* # */) {
        if (!db.version) {
          const v = /^#\s*Version:\s*(\S+)/.exec(text.slice(start, end));
          if (v) db.version = v[1];
        }
      } else {
        const c =
          c0 === 67 /* C */ && text.charCodeAt(start + 1) === 32 ? idEntry(text, start + 2, end, 2, 2) : null;
        const e = c ? null : idEntry(text, start, end, 4, 4);
        if (c) {
          inClasses = true;
          vendor = null;
          cls = { id: c.id, name: c.name, subclasses: new Map() };
          db.classes.set(cls.id, cls);
          sub = null;
        } else if (e) {
          inClasses = false;
          cls = null;
          vendor = { id: e.id, name: e.name, devices: new Map() };
          db.vendors.set(vendor.id, vendor);
        } else if (c0 >= 65 && c0 <= 90 && text.charCodeAt(start + 1) === 32) {
          // another top-level list (device types, languages …): not ours
          inClasses = false;
          vendor = null;
          cls = null;
        }
      }
      start = next;
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
