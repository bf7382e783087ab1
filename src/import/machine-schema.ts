/**
 * The peerdma machine file (YAML or JSON): a fabric described as data. Schema in zod so that
 * every error names the path inside the file and what was expected. docs/machine-file.md
 * documents the format.
 */
import { z } from "zod";
import { ACS_BIT_NAMES, ACS_BITS, type AcsBitName } from "../pci/regs.js";

const SIZE_UNITS: Record<string, bigint> = {
  "": 1n,
  K: 1n << 10n,
  KIB: 1n << 10n,
  M: 1n << 20n,
  MIB: 1n << 20n,
  G: 1n << 30n,
  GIB: 1n << 30n,
  T: 1n << 40n,
  TIB: 1n << 40n,
};

/** Parses 123, "0x1f", "0x80_0000_0000", "16MiB", "64 GiB" into a bigint, or null. */
export function parseBigIntish(v: unknown): bigint | null {
  if (typeof v === "number") return Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : null;
  if (typeof v !== "string") return null;
  const s = v.trim().replace(/_/g, "");
  const m = /^(0x[0-9a-fA-F]+|\d+)\s*([KMGT]i?B?|[KMGT])?$/i.exec(s);
  if (!m) return null;
  const unit = (m[2] ?? "").toUpperCase().replace(/B$/, "");
  const mul = SIZE_UNITS[unit === "" ? "" : unit.endsWith("I") ? unit + "B" : unit];
  if (mul === undefined) return null;
  return BigInt(m[1]) * mul;
}

const BigNum = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = parseBigIntish(v);
  if (n === null) {
    ctx.addIssue({
      code: "custom",
      message: `expected a non-negative integer, hex (0x…) or size (16MiB), got ${JSON.stringify(v)}`,
    });
    return z.NEVER;
  }
  return n;
});

const SmallNum = BigNum.refine((n) => n <= 0xffff_ffffn, "expected a value below 2^32").transform(Number);

const PciId = z
  .string()
  .regex(/^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$/, "expected a PCI id vvvv:dddd in hex, e.g. 15b3:1021")
  .transform((s) => ({
    vendor: Number.parseInt(s.slice(0, 4), 16),
    device: Number.parseInt(s.slice(5), 16),
  }));

const AcsBits = z
  .union([z.array(z.enum(ACS_BIT_NAMES as unknown as [AcsBitName, ...AcsBitName[]])), SmallNum])
  .transform((v) => (Array.isArray(v) ? v.reduce((a, n) => a | ACS_BITS[n], 0) : v & 0x7f));

const GTS = [2.5, 5, 8, 16, 32, 64, 128] as const;
const Speed = z.number().refine((v) => (GTS as readonly number[]).includes(v), {
  message: `expected a link speed in GT/s: one of ${GTS.join(", ")}`,
});
const Width = z
  .number()
  .int()
  .refine((v) => [1, 2, 4, 8, 12, 16, 32].includes(v), {
    message: "expected a link width of 1, 2, 4, 8, 12, 16 or 32",
  });
/** LnkCap may read 0 ("Unknown" speed, width x0) while LnkSta reports a link: QEMU's xio3130-downstream. */
const MaxSpeed = z.union([z.literal(0), Speed]);
const MaxWidth = z.union([z.literal(0), Width]);

/** MPS / MRRS in bytes: the six encodable values (codes 6 and 7 are reserved, BW-14). */
const PayloadSize = z
  .number()
  .int()
  .refine((v) => [128, 256, 512, 1024, 2048, 4096].includes(v), {
    message:
      "expected a payload size of 128, 256, 512, 1024, 2048 or 4096 bytes (codes 6 and 7 are reserved)",
  });

const Link = z
  .object({
    speed: Speed,
    width: Width,
    maxSpeed: MaxSpeed.optional(),
    maxWidth: MaxWidth.optional(),
    flit: z.boolean().optional(),
  })
  .strict();

const Bar = z
  .object({
    index: z.number().int().min(0).max(5),
    type: z.enum(["mem32", "mem64", "io"]).default("mem32"),
    prefetch: z.boolean().default(false),
    size: BigNum,
    /** CPU physical address; allocated from the host bridge's windows when absent. */
    address: BigNum.optional(),
    name: z.string().optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.size === 0n || (b.size & (b.size - 1n)) !== 0n)
      ctx.addIssue({ code: "custom", path: ["size"], message: "a BAR size must be a power of two" });
    if (b.type === "io" && b.size < 4n)
      ctx.addIssue({ code: "custom", path: ["size"], message: "an IO BAR is at least 4 bytes" });
    if (b.type !== "io" && b.size < 16n)
      ctx.addIssue({ code: "custom", path: ["size"], message: "a memory BAR is at least 16 bytes" });
    if (b.type === "mem64" && b.index === 5)
      ctx.addIssue({
        code: "custom",
        path: ["index"],
        message: "a 64-bit BAR needs two registers; BAR5 has no upper half",
      });
    if (b.type === "mem32" && b.size > 1n << 31n)
      ctx.addIssue({ code: "custom", path: ["size"], message: "a 32-bit BAR is at most 2 GiB" });
    if (b.address !== undefined && b.address % b.size !== 0n)
      ctx.addIssue({
        code: "custom",
        path: ["address"],
        message: "a BAR address must be aligned to its size",
      });
  });

export const FUNCTION_KINDS = [
  "endpoint",
  "legacy-endpoint",
  "rciep",
  "root-port",
  "upstream-port",
  "downstream-port",
  "pcie-to-pci-bridge",
  "pci-bridge",
  "pci-device",
  "host-bridge",
] as const;
export type MachineFunctionKind = (typeof FUNCTION_KINDS)[number];

const Sriov = z
  .object({
    totalVfs: z.number().int().min(1).max(0xffff),
    numVfs: z.number().int().min(0).max(0xffff),
    vfOffset: z.number().int().min(1).max(0xffff),
    vfStride: z.number().int().min(1).max(0xffff),
    vfDevice: z
      .union([z.number(), z.string()])
      .transform((v) => (typeof v === "number" ? v : Number.parseInt(v, 16))),
    vfBars: z.array(Bar).default([]),
    vfDriver: z.string().nullable().optional(),
  })
  .strict()
  .refine((s) => s.numVfs <= s.totalVfs, { message: "numVfs exceeds totalVfs", path: ["numVfs"] });

const Tph = z
  .object({
    modes: z.array(z.enum(["no-st", "interrupt-vector", "device-specific"])).default(["no-st"]),
    extendedRequester: z.boolean().default(false),
    stTable: z.enum(["none", "cap", "msix"]).default("none"),
    stTableSize: z.number().int().min(1).max(2048).optional(),
  })
  .strict();

/**
 * Vital Product Data: either raw bytes (`hex`) or the fields to lay out (identifier string,
 * read-only and read-write keywords; an RV checksum is added to the read-only section).
 */
const Vpd = z.union([
  z
    .object({
      hex: z
        .string()
        .transform((s) => s.replace(/[\s_:]/g, ""))
        .refine((s) => /^([0-9a-fA-F]{2})*$/.test(s), 'expected hex bytes, e.g. "82 05 00 …"'),
    })
    .strict(),
  z
    .object({
      idString: z.string().optional(),
      readOnly: z
        .record(z.string().regex(/^[A-Za-z0-9]{2}$/, "a VPD keyword is two characters"), z.string().max(255))
        .optional(),
      readWrite: z
        .record(z.string().regex(/^[A-Za-z0-9]{2}$/, "a VPD keyword is two characters"), z.string().max(255))
        .optional(),
    })
    .strict(),
]);

const FunctionBase = z
  .object({
    at: z.string().regex(/^[0-9a-fA-F]{1,2}\.[0-7]$/, "expected device.function in hex, e.g. 00.0 or 1f.3"),
    kind: z.enum(FUNCTION_KINDS).default("endpoint"),
    id: PciId,
    subsystem: PciId.optional(),
    class: SmallNum.optional(),
    revision: SmallNum.optional(),
    name: z.string().optional(),
    /** Raw header-type byte override (bit 7 = multi-function). */
    headerType: SmallNum.optional(),
    bars: z.array(Bar).default([]),
    link: Link.optional(),
    acs: z
      .object({ cap: AcsBits, ctrl: AcsBits.default(0), egressBits: z.number().int().optional() })
      .strict()
      .optional(),
    flr: z.boolean().optional(),
    /** `false`: no PM capability (PCIe kinds get one by default), e.g. QEMU's root and switch ports. */
    pm: z
      .union([z.literal(false), z.object({ noSoftReset: z.boolean().default(false) }).strict()])
      .optional(),
    af: z
      .object({ flr: z.boolean().default(true), tp: z.boolean().default(true) })
      .strict()
      .optional(),
    mpsSupported: PayloadSize.optional(),
    mps: PayloadSize.optional(),
    mrrs: PayloadSize.optional(),
    rcb: z.union([z.literal(64), z.literal(128)]).optional(),
    tenBitTag: z.boolean().optional(),
    /** DevCap/DevCtl Extended Tag (default on); QEMU devices report ExtTag-. */
    extTag: z.boolean().optional(),
    tphCompleter: z.enum(["none", "tph", "ext"]).optional(),
    /** DevCap2 End-End TLP Prefix Supported (default false). */
    eeTlpPrefix: z.boolean().optional(),
    tph: Tph.optional(),
    msix: z.number().int().min(1).max(2048).optional(),
    ats: z.boolean().optional(),
    pri: z.boolean().optional(),
    pasid: z.boolean().optional(),
    ari: z.boolean().optional(),
    serial: BigNum.optional(),
    sriov: Sriov.optional(),
    driver: z.string().nullable().optional(),
    iommu: z.boolean().optional(),
    dmaMaskBits: z.number().int().min(24).max(64).optional(),
    dmaAliases: z.array(z.string()).optional(),
    acsQuirk: z.boolean().optional(),
    numaNode: z.number().int().optional(),
    secondaryBus: SmallNum.optional(),
    memoryEnabled: z.boolean().optional(),
    /** BARs peers cannot map (s390 `non_mappable_bars`). */
    nonMappableBars: z.boolean().optional(),
    /** Vital Product Data (e.g. the `VU` keyword a ConnectX data-direct DMA PF carries). */
    vpd: Vpd.optional(),
    dmaEngineGBps: z.number().positive().optional(),
    maxOutstandingReads: z.number().int().positive().optional(),
  })
  .strict();

export type MachineFunctionInput = z.input<typeof FunctionBase> & { below?: MachineFunctionInput[] };
export type MachineFunction = z.output<typeof FunctionBase> & { below?: MachineFunction[] };

export const MachineFunctionSchema: z.ZodType<MachineFunction, MachineFunctionInput> = FunctionBase.extend({
  get below() {
    return z.array(MachineFunctionSchema).optional();
  },
}).strict() as unknown as z.ZodType<MachineFunction, MachineFunctionInput>;

const Window = z.object({ cpuBase: BigNum, size: BigNum, busOffset: BigNum.default(0n) }).strict();

export const HostBridgeSchema = z
  .object({
    domain: SmallNum.default(0),
    bus: SmallNum.default(0),
    name: z.string().optional(),
    numaNode: z.number().int().default(-1),
    windows: z.array(Window).default([]),
    p2pSplitBytes: z.number().int().positive().optional(),
    p2pForwardGBps: z.number().positive().optional(),
    functions: z.array(MachineFunctionSchema).min(1, "a host bridge needs at least one function"),
  })
  .strict();

export const MachineSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    cpu: z
      .object({
        vendor: z.string(),
        family: SmallNum,
        model: SmallNum.optional(),
        modelName: z.string().optional(),
      })
      .strict()
      .optional(),
    iommu: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .optional(),
    hostBridges: z.array(HostBridgeSchema).min(1, "a machine needs at least one host bridge"),
    /** Free-form notes: where the data came from. */
    provenance: z.string().optional(),
  })
  .strict();

export type MachineInput = z.input<typeof MachineSchema>;
export type MachineDescription = z.output<typeof MachineSchema>;
