/** Fabric F of kernel-semantics §13.0, optionally modified per test, built from the real builtin file. */
import { parse } from "yaml";
import { builtinText } from "../../src/import/builtin.js";
import { fabricFromDescription } from "../../src/import/machine-file.js";
import {
  type MachineFunctionInput,
  type MachineInput,
  MachineSchema,
} from "../../src/import/machine-schema.js";
import type { PciDev } from "../../src/pci/device.js";
import { DEFAULT_CPU, type Fabric } from "../../src/pci/fabric.js";

export const BDF = {
  H0: "0000:00:00.0",
  RP0: "0000:00:01.0",
  USP: "0000:01:00.0",
  DSPa: "0000:02:00.0",
  DSPb: "0000:02:01.0",
  EPa: "0000:03:00.0",
  EPb: "0000:04:00.0",
  EPbVF: "0000:04:00.1",
  RP1: "0000:00:02.0",
  EPc: "0000:05:00.0",
  RP2: "0000:00:03.0",
  MF0: "0000:06:00.0",
  MF1: "0000:06:00.1",
  RC1: "0000:00:04.0",
  RC2: "0000:00:05.0",
  EPd: "0001:01:00.0",
} as const;

export type FName = keyof typeof BDF;

/** Finds a function of the machine description by its `name:` (RP0, DSPa, EPa …). */
export function fn(m: MachineInput, name: string): MachineFunctionInput {
  const walk = (fs: MachineFunctionInput[]): MachineFunctionInput | undefined => {
    for (const f of fs) {
      if (f.name === name) return f;
      const r = walk(f.below ?? []);
      if (r) return r;
    }
    return undefined;
  };
  for (const h of m.hostBridges) {
    const r = walk(h.functions as MachineFunctionInput[]);
    if (r) return r;
  }
  throw new Error(`no function named ${name} in spec-f`);
}

export interface SpecF {
  fabric: Fabric;
  dev: Record<FName, PciDev>;
}

/** Builds F; `mutate` edits the machine description first (ACS controls, ids, capabilities). */
export function specF(mutate?: (m: MachineInput) => void): SpecF {
  const raw = parse(builtinText("spec-f").text) as MachineInput;
  mutate?.(raw);
  const fabric = fabricFromDescription(MachineSchema.parse(raw));
  const dev = Object.fromEntries(Object.entries(BDF).map(([k, v]) => [k, fabric.get(v)])) as Record<
    FName,
    PciDev
  >;
  return { fabric, dev };
}

/** Sets the host-bridge identity device id of H0 (e.g. "8086:2020", allow-listed). */
export function identity(id: string) {
  return (m: MachineInput) => {
    m.hostBridges[0].functions[0].id = id;
  };
}

export const cpuIntel = DEFAULT_CPU;
export const cpuZen = { vendor: "AuthenticAMD", family: 0x17, source: "test" };

export function compose(...fs: ((m: MachineInput) => void)[]) {
  return (m: MachineInput) => {
    for (const f of fs) f(m);
  };
}
