/** fast-check arbitraries for random but valid machine descriptions (and so fabrics). */
import fc from "fast-check";
import type { MachineFunctionInput, MachineInput } from "../../src/import/machine-schema.js";

const ACS_NAMES = ["SV", "TB", "RR", "CR", "UF", "EC", "DT"] as const;
type AcsName = (typeof ACS_NAMES)[number];

const acsArb = fc.option(
  fc.record({
    cap: fc.subarray([...ACS_NAMES] as AcsName[], { minLength: 1 }),
    ctrl: fc.subarray([...ACS_NAMES] as AcsName[]),
  }),
  { nil: undefined },
);

const slotFn = (slot: number, fn: number) => `${slot.toString(16).padStart(2, "0")}.${fn}`;

/** Endpoints (1–3 functions in one slot) below a port. */
function endpointsArb(): fc.Arbitrary<MachineFunctionInput[]> {
  return fc
    .record({ n: fc.integer({ min: 1, max: 3 }), acs: acsArb, link: fc.constantFrom(4, 8, 16) })
    .map(({ n, acs, link }) =>
      Array.from({ length: n }, (_, fn) => ({
        at: slotFn(0, fn),
        id: "1b36:0010",
        class: 0x010802,
        link: { speed: 16, width: link },
        bars: [{ index: 0, type: "mem64" as const, prefetch: true, size: "1MiB" }],
        ...(n > 1 && acs ? { acs } : {}),
      })),
    );
}

/**
 * A switch: 1–3 downstream ports, each leading to endpoints or (while `nest` > 0) to another
 * switch, so that some paths cross two switches (nvidia-smi's PXB).
 */
function switchArb(nest: number): fc.Arbitrary<MachineFunctionInput> {
  const below: fc.Arbitrary<MachineFunctionInput[]> =
    nest > 0
      ? fc.oneof(
          { arbitrary: endpointsArb(), weight: 3 },
          { arbitrary: switchArb(nest - 1).map((s) => [s]), weight: 1 },
        )
      : endpointsArb();
  return fc
    .record({ dsps: fc.array(fc.record({ acs: acsArb, below }), { minLength: 1, maxLength: 3 }) })
    .map(({ dsps }) => ({
      at: "00.0",
      kind: "upstream-port" as const,
      id: "10b5:8796",
      link: { speed: 16, width: 16 },
      below: dsps.map((d, i) => ({
        at: slotFn(i, 0),
        kind: "downstream-port" as const,
        id: "10b5:8796",
        link: { speed: 16, width: 16 },
        ...(d.acs ? { acs: d.acs } : {}),
        below: d.below,
      })),
    }));
}

const rootPortArb = (slot: number) =>
  fc
    .record({
      acs: acsArb,
      child: fc.oneof(
        endpointsArb(),
        switchArb(1).map((s) => [s]),
      ),
    })
    .map(
      ({ acs, child }): MachineFunctionInput => ({
        at: slotFn(slot, 0),
        kind: "root-port",
        id: "1b36:000c",
        link: { speed: 16, width: 16 },
        ...(acs ? { acs } : {}),
        below: child,
      }),
    );

const hostBridgeArb = (domain: number) =>
  fc
    .record({
      identity: fc.constantFrom("8086:1234", "8086:2020", "8086:2f00", "8086:09a2"),
      ports: fc
        .integer({ min: 1, max: 3 })
        .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => rootPortArb(i + 1)))),
      rcieps: fc.integer({ min: 0, max: 2 }),
    })
    .map(({ identity, ports, rcieps }) => ({
      domain,
      bus: 0,
      functions: [
        { at: "00.0", kind: "host-bridge" as const, id: identity },
        ...ports,
        ...Array.from({ length: rcieps }, (_, i) => ({
          at: slotFn(0x10 + i, 0),
          kind: "rciep" as const,
          id: "8086:0b25",
          bars: [{ index: 0, type: "mem64" as const, prefetch: true, size: "1MiB" }],
        })),
      ],
    }));

export const machineArb: fc.Arbitrary<MachineInput> = fc
  .record({
    hbs: fc
      .integer({ min: 1, max: 2 })
      .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => hostBridgeArb(i)))),
    amd: fc.boolean(),
  })
  .map(({ hbs, amd }) => ({
    name: "random",
    cpu: amd ? { vendor: "AuthenticAMD", family: 0x19 } : { vendor: "GenuineIntel", family: 6 },
    hostBridges: hbs,
  }));
