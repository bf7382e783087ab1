/** Small machines and lookups for the data-plane and NVMe tests. */
import { DmaEngine, type DmaEngineOptions } from "../../src/dataplane/index.js";
import { loadBuiltin } from "../../src/import/builtin.js";
import { parseMachineFile } from "../../src/import/machine-file.js";
import { Machine, type MachineOptions } from "../../src/machine/machine.js";
import type { PciDev } from "../../src/pci/device.js";
import { decodeTlpText } from "../../src/tlp/index.js";
import { specF } from "../helpers/spec-f.js";

export interface Rig {
  m: Machine;
  e: DmaEngine;
  dev(name: string): PciDev;
}

function rig(m: Machine, opts?: DmaEngineOptions): Rig {
  const e = new DmaEngine(m, opts);
  return {
    m,
    e,
    dev(name: string) {
      const d = m.fabric
        .devices()
        .find((x) => x.name === name || x.name.startsWith(`${name} `) || x.bdf === name);
      if (!d) throw new Error(`no function ${name}`);
      return d;
    },
  };
}

export function fromText(text: string, opts?: DmaEngineOptions): Rig {
  return rig(new Machine(parseMachineFile(text, "test.yaml").fabric), opts);
}

export function storageRdma(opts?: DmaEngineOptions): Rig {
  return rig(new Machine(loadBuiltin("storage-rdma").fabric), opts);
}

export function specFRig(opts?: DmaEngineOptions, machine?: MachineOptions): Rig {
  return rig(new Machine(specF().fabric, machine), opts);
}

/** An AMD Zen host: the P2PDMA allow-list passes every host bridge (THRU_HOST_BRIDGE in F). */
export const AMD_ZEN: MachineOptions = { cpu: { vendor: "AuthenticAMD", family: 0x19, source: "test" } };

export interface SwitchParams {
  /** Link of the NIC and of the SSD (and their downstream ports). */
  flit?: boolean;
  /** End-End TLP Prefix support of: root port, upstream port, DSP0 (NIC side), DSP1 (SSD side). */
  ee?: { rp?: boolean; usp?: boolean; dsp0?: boolean; dsp1?: boolean };
  mps?: number;
  /** ACS P2P Request Redirect on the downstream ports. */
  redirect?: boolean;
}

/** Root port → switch → {NIC, SSD with a CMB}; optionally a second root port with a GPU. */
export function switchMachine(p: SwitchParams = {}): string {
  const mps = p.mps ?? 256;
  const speed = p.flit ? 64 : 16;
  const link = `{ speed: ${speed}, width: 16${p.flit ? ", flit: true" : ""} }`;
  const ee = (v: boolean | undefined) => (v === undefined ? "true" : String(v));
  const acs = p.redirect
    ? "acs: { cap: [SV, RR, CR, UF], ctrl: [SV, RR, CR, UF] }"
    : "acs: { cap: [SV, RR, CR, UF], ctrl: [SV, UF] }";
  return `
name: switch-rig
hostBridges:
  - domain: 0
    bus: 0
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:09a2" }
      - at: "01.0"
        kind: root-port
        id: "8086:347a"
        name: RP
        link: ${link}
        mps: ${mps}
        eeTlpPrefix: ${ee(p.ee?.rp)}
        below:
          - at: "00.0"
            kind: upstream-port
            id: "1000:c010"
            name: USP
            link: ${link}
            mps: ${mps}
            eeTlpPrefix: ${ee(p.ee?.usp)}
            below:
              - at: "00.0"
                kind: downstream-port
                id: "1000:c010"
                name: DSP0
                link: ${link}
                mps: ${mps}
                ${acs}
                eeTlpPrefix: ${ee(p.ee?.dsp0)}
                below:
                  - at: "00.0"
                    id: "15b3:1021"
                    name: NIC
                    link: ${link}
                    mps: ${mps}
                    mrrs: 4096
                    tph: { modes: [no-st, device-specific], extendedRequester: true, stTable: cap, stTableSize: 64 }
                    bars:
                      - { index: 0, type: mem64, prefetch: true, size: 1MiB }
                    sriov: { totalVfs: 4, numVfs: 1, vfOffset: 1, vfStride: 1, vfDevice: 0x101e }
              - at: "01.0"
                kind: downstream-port
                id: "1000:c010"
                name: DSP1
                link: ${link}
                mps: ${mps}
                ${acs}
                eeTlpPrefix: ${ee(p.ee?.dsp1)}
                below:
                  - at: "00.0"
                    id: "144d:a824"
                    class: 0x010802
                    name: SSD
                    link: ${link}
                    mps: ${mps}
                    mrrs: 512
                    tphCompleter: ext
                    bars:
                      - { index: 0, type: mem64, size: 32KiB }
                      - { index: 2, type: mem64, prefetch: true, size: 1MiB, name: CMB }
      - at: "02.0"
        kind: root-port
        id: "8086:347a"
        name: RP2
        link: { speed: 16, width: 16 }
        mps: ${mps}
        eeTlpPrefix: true
        below:
          - at: "00.0"
            id: "10de:2331"
            name: GPU
            link: { speed: 16, width: 16 }
            mps: ${mps}
            mrrs: 4096
            bars:
              - { index: 0, type: mem64, prefetch: true, size: 16MiB }
`;
}

/** Every trace line decodes back (as `peerdma tlp decode <file>` reads it) to the recorded header bytes. */
export function traceLinesDecode(text: string): number {
  let n = 0;
  for (const line of text.split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    decodeTlpText(line);
    n++;
  }
  return n;
}

export const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
