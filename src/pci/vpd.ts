/**
 * PCI Vital Product Data (PCI Local Bus spec §6.4 / PCIe "VPD"; Linux `drivers/pci/vpd.c`), as far as
 * drivers read it: the resource-tag byte format, the size walk `pci_vpd_alloc` does before it
 * reads, and the keyword lookup inside the read-only section (`pci_vpd_find_ro_info_keyword`).
 *
 * A function's VPD is device data (`PciDev.vpd`): the bytes its VPD capability would return,
 * `null` when it has no VPD capability. Machine files and tests provide them, either as raw bytes
 * or built with {@link buildVpd}.
 *
 * Byte format: a large resource item is `0x80 | name`, a 16-bit little-endian length, then data
 * (0x82 identifier string, 0x90 VPD-R read-only keywords, 0x91 VPD-W read-write keywords); a small
 * item packs name and length in one byte (`name << 3 | len`); the end tag is 0x78. Inside VPD-R and
 * VPD-W, each field is a two-character keyword, a one-byte length and the data. The `RV` keyword's
 * first data byte makes the byte sum from offset 0 through itself zero (the kernel does not check it).
 */
import { KernelError } from "../core/errors.js";
import type { FaultInjector } from "../core/fault-inject.js";
import { NO_FAULTS } from "../core/fault-inject.js";
import type { PciDev } from "./device.js";

export const PCI_VPD_LRDT = 0x80;
export const PCI_VPD_LRDT_ID_STRING = 0x82;
export const PCI_VPD_LRDT_RO_DATA = 0x90;
export const PCI_VPD_LRDT_RW_DATA = 0x91;
export const PCI_VPD_STIN_END = 0x0f;
/** The end tag byte: small item, name 0xF, length 0. */
export const PCI_VPD_END_TAG = 0x78;
export const PCI_VPD_LRDT_TAG_SIZE = 3;
export const PCI_VPD_SRDT_TAG_SIZE = 1;
export const PCI_VPD_INFO_FLD_HDR_SIZE = 3;
/** The VPD address register has 15 bits. */
export const PCI_VPD_MAX_SIZE = 0x8000;

export type VpdField = readonly [keyword: string, data: string | Uint8Array];

export interface VpdContent {
  /** Identifier string (tag 0x82); omitted when undefined. */
  idString?: string;
  /** VPD-R fields in order; an `RV` checksum field is appended unless `checksum: false`. */
  readOnly?: readonly VpdField[];
  /** VPD-W fields in order. */
  readWrite?: readonly VpdField[];
  checksum?: boolean;
  /** Leave out the end tag (a malformed VPD). */
  noEndTag?: boolean;
}

const ascii = (s: string | Uint8Array): Uint8Array =>
  typeof s === "string" ? Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff) : s;

function large(name: number, data: number[]): number[] {
  return [name, data.length & 0xff, (data.length >> 8) & 0xff, ...data];
}

function fields(fs: readonly VpdField[]): number[] {
  const out: number[] = [];
  for (const [kw, d] of fs) {
    if (kw.length !== 2) throw new RangeError(`VPD keyword "${kw}" must be two characters`);
    const data = ascii(d);
    if (data.length > 255) throw new RangeError(`VPD field ${kw} longer than 255 bytes`);
    out.push(kw.charCodeAt(0), kw.charCodeAt(1), data.length, ...data);
  }
  return out;
}

/** Lays out VPD bytes in the standard format. */
export function buildVpd(c: VpdContent): Uint8Array {
  const out: number[] = [];
  if (c.idString !== undefined) out.push(...large(PCI_VPD_LRDT_ID_STRING, [...ascii(c.idString)]));
  if (c.readOnly) {
    const body = fields(c.readOnly);
    if (c.checksum !== false) {
      // RV with one data byte: the checksum over everything up to and including it
      const head = [...out, PCI_VPD_LRDT_RO_DATA, 0, 0, ...body, 0x52, 0x56, 1];
      const lenAll = body.length + 4;
      head[out.length + 1] = lenAll & 0xff;
      head[out.length + 2] = (lenAll >> 8) & 0xff;
      const sum = head.reduce((a, b) => a + b, 0);
      body.push(0x52, 0x56, 1, -sum & 0xff);
    }
    out.push(...large(PCI_VPD_LRDT_RO_DATA, body));
  }
  if (c.readWrite) out.push(...large(PCI_VPD_LRDT_RW_DATA, fields(c.readWrite)));
  if (!c.noEndTag) out.push(PCI_VPD_END_TAG);
  return Uint8Array.from(out);
}

/**
 * `pci_vpd_size`: walks the resource items of the device's VPD to find its length. Reads past the
 * bytes the device has stop the walk. Returns 0 for "invalid" (first byte 0x00 or 0xFF, or an item
 * that would end beyond the 32 KiB VPD space before anything valid was seen).
 */
export function pciVpdSize(vpd: Uint8Array): number {
  let off = 0;
  while (off < vpd.length) {
    const tag = vpd[off];
    if (off === 0 && (tag === 0x00 || tag === 0xff)) return 0;
    if (tag & PCI_VPD_LRDT) {
      if (off + 3 > vpd.length) return off; // the length bytes cannot be read
      const size = vpd[off + 1] | (vpd[off + 2] << 8);
      if (off + size > PCI_VPD_MAX_SIZE) return off;
      off += PCI_VPD_LRDT_TAG_SIZE + size;
    } else {
      const size = tag & 7;
      if (off + size > PCI_VPD_MAX_SIZE) return off;
      off += PCI_VPD_SRDT_TAG_SIZE + size;
      if (((tag >> 3) & 0xf) === PCI_VPD_STIN_END) return off;
    }
  }
  return off;
}

/**
 * `pci_vpd_alloc(dev)`: the whole VPD in a buffer. No VPD capability or an invalid VPD → -ENODEV;
 * fewer bytes readable than the size walk found (or an injected read failure at site
 * `pci_read_vpd`) → -EIO; allocation failure (site `kmalloc:vpd`) → -ENOMEM.
 */
export function pciVpdAlloc(dev: PciDev, faults: FaultInjector = NO_FAULTS): Uint8Array {
  const vpd = dev.vpd;
  if (!vpd) throw new KernelError("ENODEV", `${dev.bdf}: no VPD capability`, "DD-7");
  const len = pciVpdSize(vpd);
  if (len === 0) throw new KernelError("ENODEV", `${dev.bdf}: VPD is invalid`, "DD-7");
  const e = faults.check("kmalloc:vpd");
  if (e) throw new KernelError(e, "pci_vpd_alloc: buffer");
  const r = faults.check("pci_read_vpd");
  if (r || len > vpd.length)
    throw new KernelError("EIO", `${dev.bdf}: short VPD read`, undefined, `${vpd.length} of ${len} bytes`);
  return vpd.slice(0, len);
}

/** `pci_vpd_find_tag`: offset of the data of the first large item `rdt` and its size, or -ENOENT. */
function findLargeTag(buf: Uint8Array, rdt: number): { start: number; size: number } {
  let i = 0;
  // only large items are walked; the end tag (a small item) stops the search
  while (i + PCI_VPD_LRDT_TAG_SIZE <= buf.length && buf[i] & PCI_VPD_LRDT) {
    const size = buf[i + 1] | (buf[i + 2] << 8);
    if (buf[i] === rdt) return { start: i + PCI_VPD_LRDT_TAG_SIZE, size };
    i += PCI_VPD_LRDT_TAG_SIZE + size;
  }
  throw new KernelError("ENOENT", `VPD has no item 0x${rdt.toString(16)}`, "DD-7");
}

/**
 * `pci_vpd_find_ro_info_keyword(buf, len, kw, &size)`: the data of keyword `kw` inside VPD-R.
 * No VPD-R item or no such keyword → -ENOENT; a field running past the buffer → -EINVAL.
 */
export function pciVpdFindRoInfoKeyword(buf: Uint8Array, kw: string): Uint8Array {
  const ro = findLargeTag(buf, PCI_VPD_LRDT_RO_DATA);
  const k0 = kw.charCodeAt(0);
  const k1 = kw.charCodeAt(1);
  const end = ro.start + ro.size;
  for (let i = ro.start; i + PCI_VPD_INFO_FLD_HDR_SIZE <= end; i += PCI_VPD_INFO_FLD_HDR_SIZE + buf[i + 2]) {
    if (buf[i] !== k0 || buf[i + 1] !== k1) continue;
    const size = buf[i + 2];
    const data = i + PCI_VPD_INFO_FLD_HDR_SIZE;
    if (data + size > buf.length) throw new KernelError("EINVAL", `VPD keyword ${kw} runs past the VPD`);
    return buf.slice(data, data + size);
  }
  throw new KernelError("ENOENT", `VPD-R has no keyword ${kw}`, "DD-7");
}

/** Readable form of VPD bytes (keyword → text), for reports and tests. */
export function describeVpd(vpd: Uint8Array): { idString?: string; readOnly: Record<string, string> } {
  const text = (b: Uint8Array) => String.fromCharCode(...b);
  const out: { idString?: string; readOnly: Record<string, string> } = { readOnly: {} };
  try {
    const id = findLargeTag(vpd, PCI_VPD_LRDT_ID_STRING);
    out.idString = text(vpd.subarray(id.start, id.start + id.size));
  } catch {
    // no identifier string
  }
  try {
    const ro = findLargeTag(vpd, PCI_VPD_LRDT_RO_DATA);
    const end = Math.min(ro.start + ro.size, vpd.length);
    for (let i = ro.start; i + 3 <= end; i += 3 + vpd[i + 2])
      out.readOnly[text(vpd.subarray(i, i + 2))] = text(vpd.subarray(i + 3, i + 3 + vpd[i + 2]));
  } catch {
    // no VPD-R
  }
  return out;
}
