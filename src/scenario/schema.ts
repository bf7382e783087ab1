/**
 * The scenario file of `peerdma run` (DESIGN.md "Interfaces"): a machine, an optional kernel
 * profile, and steps written with the kernel's uAPI names, each with optional expectations.
 * docs/scenario.schema.json is generated from this schema (a test keeps them equal).
 */
import { z } from "zod";

const Name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, "expected a name (letters, digits, _ or -)");
const Bdf = z.string().min(1);
const Num = z.union([
  z.number().int(),
  z.string().regex(/^(0x[0-9a-fA-F_]+|\d+)$/, "expected a number or 0x… hex"),
]);

const ErrnoExpect = z.union([z.literal(0), z.number().int().positive(), z.string().regex(/^E[A-Z0-9]+$/)]);

export const Expect = z
  .object({
    /** 0 for success, or the errno (name like EINVAL or number). */
    errno: ErrnoExpect.optional(),
    ret: z.number().int().optional(),
    /** move_notify calls this step caused, per attachment name. */
    move_notify: z.record(z.string(), z.number().int().min(0)).optional(),
    /** Buffer states after the step, per dma-buf name: ACTIVE | SUSPENDED | DEAD | RELEASED. */
    state: z.record(z.string(), z.enum(["ACTIVE", "SUSPENDED", "DEAD", "RELEASED"])).optional(),
    /** For map steps: the address mode and/or the entries [dmaAddress, length] (hex strings or numbers). */
    map: z
      .object({
        mode: z.enum(["bus", "iova", "per-range"]).optional(),
        entries: z.array(z.tuple([Num, Num])).optional(),
        nents: z.number().int().optional(),
      })
      .strict()
      .optional(),
    /** Diagnostics (e.g. "leak:mapping-on-detach") this step must record. */
    diagnostics: z.array(z.string()).optional(),
  })
  .strict();

const common = { expect: Expect.optional(), note: z.string().optional() };

const Range = z.union([z.tuple([Num, Num]), z.object({ offset: Num, length: Num }).strict()]);

export const Step = z.union([
  z.object({ open: Bdf, as: Name, cdev: z.boolean().optional(), ...common }).strict(),
  z
    .object({
      ioctl: z.union([z.string(), z.number().int()]),
      fd: z.union([Name, z.number().int()]),
      arg: z.union([z.string(), z.null()]).default(""),
      as: Name.optional(),
      ...common,
    })
    .strict(),
  z
    .object({
      export: z
        .object({
          fd: z.union([Name, z.number().int()]),
          region: z.number().int().min(0),
          ranges: z.array(Range).min(0),
          openFlags: Num.optional(),
          flags: Num.optional(),
        })
        .strict(),
      as: Name.optional(),
      ...common,
    })
    .strict(),
  z.object({ close: z.union([Name, z.number().int()]), ...common }).strict(),
  z
    .object({
      event: z.enum(["reset", "flr", "memory-off", "memory-on", "unbind", "wake", "d3hot", "d0"]),
      device: Bdf,
      ...common,
    })
    .strict(),
  z
    .object({
      configWrite: z
        .object({
          device: Bdf,
          offset: Num,
          size: z.union([z.literal(1), z.literal(2), z.literal(4)]),
          value: Num,
        })
        .strict(),
      ...common,
    })
    .strict(),
  z
    .object({
      attach: Name,
      importer: z
        .object({ device: Bdf, dynamic: z.boolean().default(true), peer2peer: z.boolean().default(true) })
        .strict(),
      as: Name,
      ...common,
    })
    .strict(),
  z
    .object({
      map: Name,
      dir: z.enum(["bidirectional", "to_device", "from_device", "none"]).default("bidirectional"),
      ...common,
    })
    .strict(),
  z.object({ unmap: Name, ...common }).strict(),
  z.object({ detach: Name, ...common }).strict(),
]);

export const Scenario = z
  .object({
    name: z.string().optional(),
    description: z.string().optional(),
    /** Spec items this scenario reproduces (K-115 …). */
    spec: z.array(z.string()).optional(),
    machine: z.string().min(1),
    kernel: z
      .object({
        profile: z.literal("v6.19").optional(),
        moveNotify: z.boolean().optional(),
        pciP2pdma: z.boolean().optional(),
        vfioPciDmabuf: z.boolean().optional(),
        sgChunk: z.enum(["uint_max", "page_aligned"]).optional(),
        iovaLinkOffset: z.enum(["zero", "cumulative"]).optional(),
        closeOrder: z.enum(["disable_then_cleanup", "cleanup_then_disable"]).optional(),
        revokeSemantics: z.enum(["move_notify", "revocable_wait"]).optional(),
        tphFeature: z.boolean().optional(),
        memattrFeature: z.boolean().optional(),
        revokeFeature: z.boolean().optional(),
        acsEgressModel: z.boolean().optional(),
        iommuNoPermMap: z.enum(["einval", "silent"]).optional(),
      })
      .strict()
      .optional(),
    cpu: z.string().optional(),
    steps: z.array(Step).min(1, "a scenario needs at least one step"),
  })
  .strict();

export type ScenarioInput = z.input<typeof Scenario>;
export type ScenarioSpec = z.output<typeof Scenario>;
export type StepSpec = z.output<typeof Step>;
export type ExpectSpec = z.output<typeof Expect>;

/** The JSON Schema published in docs/. */
export function scenarioJsonSchema(): unknown {
  return z.toJSONSchema(Scenario, { io: "input", target: "draft-2020-12" });
}
