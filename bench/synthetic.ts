/** Synthetic fabrics for benchmarks, built through the machine-file path like any machine. */
import { fabricFromDescription } from "../src/import/machine-file.js";
import { type MachineInput, MachineSchema } from "../src/import/machine-schema.js";
import type { Fabric } from "../src/pci/fabric.js";

const sf = (slot: number, fn = 0) => `${slot.toString(16).padStart(2, "0")}.${fn}`;

/**
 * `hostBridges` × `rootPorts` root ports, each with a switch of `dsps` downstream ports, each with one
 * endpoint. ACS: root ports isolate (SV|RR|CR|UF); every other downstream port redirects (RR|CR).
 */
export function syntheticFabric(hostBridges: number, rootPorts: number, dsps: number): Fabric {
  const m: MachineInput = {
    name: `synthetic-${hostBridges * rootPorts * dsps}`,
    hostBridges: Array.from({ length: hostBridges }, (_, h) => ({
      domain: h,
      bus: 0,
      functions: [
        { at: "00.0", kind: "host-bridge" as const, id: h % 2 ? "8086:2020" : "8086:1234" },
        ...Array.from({ length: rootPorts }, (_, r) => ({
          at: sf(r + 1),
          kind: "root-port" as const,
          id: "1b36:000c",
          link: { speed: 16, width: 16 },
          acs: {
            cap: ["SV", "RR", "CR", "UF", "EC"] as ("SV" | "RR" | "CR" | "UF" | "EC")[],
            ctrl: ["SV", "RR", "CR", "UF"] as ("SV" | "RR" | "CR" | "UF")[],
          },
          below: [
            {
              at: "00.0",
              kind: "upstream-port" as const,
              id: "10b5:8796",
              link: { speed: 16, width: 16 },
              below: Array.from({ length: dsps }, (_, d) => ({
                at: sf(d),
                kind: "downstream-port" as const,
                id: "10b5:8796",
                link: { speed: 16, width: 16 },
                acs: {
                  cap: ["SV", "RR", "CR", "UF", "EC"] as ("SV" | "RR" | "CR" | "UF" | "EC")[],
                  ctrl: (d % 2 ? ["RR", "CR"] : ["SV", "UF"]) as ("SV" | "RR" | "CR" | "UF")[],
                },
                below: [
                  {
                    at: "00.0",
                    id: "10de:2331",
                    link: { speed: 16, width: 16 },
                    bars: [{ index: 0, type: "mem64" as const, prefetch: true, size: "1MiB" }],
                  },
                ],
              })),
            },
          ],
        })),
      ],
    })),
  };
  return fabricFromDescription(MachineSchema.parse(m));
}
