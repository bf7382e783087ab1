/**
 * Link rates per PCIe generation (pcie-bandwidth.md §2, §4.1, §7). Units: GB/s = 10^9 B/s per
 * direction.
 */
import { InputError } from "../core/errors.js";

export interface PcieGeneration {
  gen: number;
  /** Giga-transfers per second per lane (PAM4 already counted as bits). */
  gts: number;
  coding: string;
  /** Payload bits per transferred bit after line coding. */
  codingEfficiency: number;
  /** Gen6 and later always run in flit mode. */
  flitOnly: boolean;
}

const ENC_8B10B = 8 / 10;
const ENC_128B130B = 128 / 130;

export const PCIE_GENERATIONS: readonly PcieGeneration[] = [
  { gen: 1, gts: 2.5, coding: "8b/10b", codingEfficiency: ENC_8B10B, flitOnly: false },
  { gen: 2, gts: 5, coding: "8b/10b", codingEfficiency: ENC_8B10B, flitOnly: false },
  { gen: 3, gts: 8, coding: "128b/130b", codingEfficiency: ENC_128B130B, flitOnly: false },
  { gen: 4, gts: 16, coding: "128b/130b", codingEfficiency: ENC_128B130B, flitOnly: false },
  { gen: 5, gts: 32, coding: "128b/130b", codingEfficiency: ENC_128B130B, flitOnly: false },
  { gen: 6, gts: 64, coding: "PAM4, 1b/1b, flit", codingEfficiency: 1, flitOnly: true },
  { gen: 7, gts: 128, coding: "PAM4, 1b/1b, flit", codingEfficiency: 1, flitOnly: true },
];

/** A flit: 256 bytes = 236 TLP space + 6 DLP + 8 CRC + 6 FEC (§4.1). */
export const FLIT_BYTES = 256;
export const FLIT_TLP_BYTES = 236;
export const FLIT_EFFICIENCY = FLIT_TLP_BYTES / FLIT_BYTES;

/** A speed as GT/s (a number: 2.5, 5, 8 …) or as a generation name ("Gen4"). */
export type LinkSpeed = number | `Gen${number}`;

/** The generation of a speed; unknown speeds are bad input. */
export function generationOf(speed: LinkSpeed): PcieGeneration {
  const g =
    typeof speed === "string"
      ? PCIE_GENERATIONS.find((x) => `Gen${x.gen}` === speed)
      : PCIE_GENERATIONS.find((x) => x.gts === speed);
  if (!g) {
    const known = PCIE_GENERATIONS.map((x) => x.gts).join(", ");
    throw new InputError(
      `unknown PCIe link speed ${JSON.stringify(speed)} (expected GT/s: one of ${known}, or "Gen1"…"Gen7")`,
    );
  }
  return g;
}

function checkWidth(width: number): void {
  if (!Number.isInteger(width) || width < 0 || width > 32)
    throw new InputError(`invalid PCIe link width ${width} (expected an integer 0…32)`);
}

/** Line rate: `width × GT/s × coding efficiency / 8` (§2). */
export function lineRate(speed: LinkSpeed, width: number): number {
  checkWidth(width);
  const g = generationOf(speed);
  return (width * g.gts * g.codingEfficiency) / 8;
}

/** Signalling rate in GT/s summed over lanes (§1 item 1). */
export function signallingRate(speed: LinkSpeed, width: number): number {
  checkWidth(width);
  return width * generationOf(speed).gts;
}

/**
 * Fraction of the line rate taken by SKP ordered sets with `--include-skp` (§2): 0.003 at
 * 2.5/5 GT/s, 0.0027 at 8–32 GT/s, unknown (0) in flit mode.
 */
export function skpFraction(speed: LinkSpeed, flit: boolean): number {
  if (flit) return 0;
  const g = generationOf(speed);
  if (g.gen <= 2) return 0.003;
  if (g.gen <= 5) return 0.0027;
  return 0;
}

/** One link direction as the throughput model sees it. */
export interface LinkParams {
  speed: LinkSpeed;
  width: number;
  /** Flit mode negotiated; Gen6+ is always flit. */
  flit?: boolean;
  /** Charge SKP ordered sets (§2, `--include-skp`). Default false. */
  includeSkp?: boolean;
  /** Flit efficiency applied below 64 GT/s in flit mode (§4.1); default 236/256. */
  fmLowRateEfficiency?: number;
}

export function isFlitMode(link: Pick<LinkParams, "speed" | "flit">): boolean {
  return generationOf(link.speed).flitOnly || link.flit === true;
}

/**
 * Bytes per second available to TLP bytes (§5.3 `rate`): NFM `lineRate × (1 − skp)`, FM
 * `lineRate × flitEfficiency` (the TLP space of §4.1).
 */
export function tlpRate(link: LinkParams): number {
  const lr = lineRate(link.speed, link.width);
  if (isFlitMode(link)) {
    const eff = generationOf(link.speed).flitOnly
      ? FLIT_EFFICIENCY
      : (link.fmLowRateEfficiency ?? FLIT_EFFICIENCY);
    return lr * eff;
  }
  return lr * (1 - (link.includeSkp ? skpFraction(link.speed, false) : 0));
}

/** TLP space of a flit-mode link (§4.1): Gen6 x16 → 118.000. */
export function tlpSpaceRate(speed: LinkSpeed, width: number, fmLowRateEfficiency?: number): number {
  return tlpRate({ speed, width, flit: true, fmLowRateEfficiency });
}

export function genName(speed: LinkSpeed): string {
  return `Gen${generationOf(speed).gen}`;
}

/** Negotiated and capable speed/width of a link (GT/s). */
export interface LinkTraining {
  speed: number;
  width: number;
  maxSpeed: number;
  maxWidth: number;
}

/**
 * The flag of a link trained below what both ends can do (§2): `degraded (capable Gen4 x16)`;
 * undefined when it runs at its capability (or the capability is unknown).
 */
export function degradedFlag(l: LinkTraining): string | undefined {
  const knownCap = l.maxSpeed > 0 && l.maxWidth > 0;
  if (!knownCap) return undefined;
  if (l.speed < l.maxSpeed || l.width < l.maxWidth)
    return `degraded (capable ${genName(l.maxSpeed)} x${l.maxWidth})`;
  return undefined;
}

/** NCCL's PCIe speed codes (GT/s → code) for `width × code / 80` (§7). */
export const NCCL_SPEED_CODES: Readonly<Record<string, number>> = {
  "2.5": 15,
  "5": 30,
  "8": 60,
  "16": 120,
  "32": 240,
  "64": 480,
};

/** NCCL's figure for a PCIe link in GB/s, or null for a speed NCCL does not know (128 GT/s). */
export function ncclBandwidth(speedGTs: number, width: number): number | null {
  checkWidth(width);
  const code = NCCL_SPEED_CODES[String(speedGTs)];
  return code === undefined ? null : (width * code) / 80;
}
