import { InputError } from "../core/errors.js";

/** PCI routing address. `devfn` = slot << 3 | function. */
export interface PciAddress {
  segment: number;
  bus: number;
  devfn: number;
}

export const slotOf = (devfn: number) => devfn >> 3;
export const fnOf = (devfn: number) => devfn & 7;
export const devfnOf = (slot: number, fn: number) => ((slot & 0x1f) << 3) | (fn & 7);

const h = (n: number, w: number) => n.toString(16).padStart(w, "0");

/** `dddd:bb:dd.f`, the form sysfs and `lspci -D` use. */
export function formatBdf(a: PciAddress): string {
  return `${h(a.segment, 4)}:${h(a.bus, 2)}:${h(slotOf(a.devfn), 2)}.${fnOf(a.devfn)}`;
}

const BDF_RE = /^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/;

/** Parses `dddd:bb:dd.f` or `bb:dd.f` (segment 0). Throws {@link InputError} on anything else. */
export function parseBdf(text: string, where?: string): PciAddress {
  const m = BDF_RE.exec(text.trim());
  if (!m) throw new InputError(`"${text}" is not a PCI address (expected dddd:bb:dd.f or bb:dd.f)`, where);
  const slot = Number.parseInt(m[3], 16);
  if (slot > 0x1f) throw new InputError(`"${text}": device number ${slot} is above 0x1f`, where);
  return {
    segment: m[1] ? Number.parseInt(m[1], 16) : 0,
    bus: Number.parseInt(m[2], 16),
    devfn: devfnOf(slot, Number.parseInt(m[4], 16)),
  };
}

/** Normalises any accepted spelling to `dddd:bb:dd.f`. */
export function normalizeBdf(text: string, where?: string): string {
  return formatBdf(parseBdf(text, where));
}

/** Parses `dd.f` (a slot and function on a bus already known). */
export function parseSlotFn(text: string, where?: string): number {
  const m = /^([0-9a-fA-F]{1,2})\.([0-7])$/.exec(text.trim());
  if (!m) throw new InputError(`"${text}" is not a device.function (expected dd.f, e.g. 00.0)`, where);
  const slot = Number.parseInt(m[1], 16);
  if (slot > 0x1f) throw new InputError(`"${text}": device number ${slot} is above 0x1f`, where);
  return devfnOf(slot, Number.parseInt(m[2], 16));
}

/**
 * The key the P2PDMA map-type cache uses for a client: (segment << 16) | (bus << 8) | devfn
 * (kernel-semantics §2.1, K-8).
 */
export function mapTypeCacheKey(a: PciAddress): number {
  return a.segment * 0x10000 + ((a.bus & 0xff) << 8) + (a.devfn & 0xff);
}
