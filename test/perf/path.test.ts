import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { parseMachineFile } from "../../src/import/machine-file.js";
import { pathPerformance } from "../../src/perf/index.js";

const f = (x: number | null, d = 3) => (x === null ? "null" : x.toFixed(d));

/**
 * GPU (Gen4 x16) below a Gen5 switch on root port 00:01.0; NIC on root port 00:02.0.
 * Buses: 01 = switch upstream port, 02 = downstream port, 03 = GPU, 04 = NIC.
 */
function gpuNicMachine(o: { split?: number; nicSpeed?: number } = {}) {
  const split = o.split ? `\n    p2pSplitBytes: ${o.split}` : "";
  const yaml = `
name: bw17
hostBridges:
  - domain: 0
    bus: 0${split}
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:1234" }
      - at: "01.0"
        kind: root-port
        id: "8086:a110"
        mps: 256
        link: { speed: 32, width: 16 }
        below:
          - at: "00.0"
            kind: upstream-port
            id: "10b5:c010"
            mps: 256
            link: { speed: 32, width: 16 }
            below:
              - at: "00.0"
                kind: downstream-port
                id: "10b5:c010"
                mps: 256
                link: { speed: 16, width: 16, maxSpeed: 32, maxWidth: 16 }
                below:
                  - { at: "00.0", name: GPU, id: "10de:2684", mps: 256, link: { speed: 16, width: 16 } }
      - at: "02.0"
        kind: root-port
        id: "8086:a112"
        mps: 256
        link: { speed: 32, width: 16 }
        below:
          - { at: "00.0", name: NIC, id: "15b3:1021", mps: 256, link: { speed: ${o.nicSpeed ?? 32}, width: 16 } }
`;
  const { fabric } = parseMachineFile(yaml, "bw17.yaml");
  return { gpu: fabric.get("0000:03:00.0"), nic: fabric.get("0000:04:00.0"), fabric };
}

test("BW-17 GPU (Gen4 x16) → switch → root port → root port → NIC (Gen5 x16): 28.807, bottleneck the GPU's link", () => {
  const { gpu, nic } = gpuNicMachine();
  const p = pathPerformance(gpu, nic);
  assert.equal(f(p.effectiveGBps), "28.807");
  assert.equal(p.limit, "link 0000:02:00.0<->0000:03:00.0");
  assert.equal(f(p.bandwidthGBps), "31.508");
  assert.deepEqual(
    p.links.map(
      (l) => `${l.upper?.bdf}<->${l.lower.bdf} ${l.direction} ${l.speed}GT/s x${l.width} ${l.effectiveGBps}`,
    ),
    [
      "0000:02:00.0<->0000:03:00.0 up 16GT/s x16 28.807",
      "0000:00:01.0<->0000:01:00.0 up 32GT/s x16 57.614",
      "0000:00:02.0<->0000:04:00.0 down 32GT/s x16 57.614",
    ],
  );
  assert.equal(p.hops, 3);
  assert.deepEqual(p.hostBridges, ["pci0000:00"]);
  assert.equal(p.pattern, "posted 256-B writes, 4-DW header, NFM");
  // the GPU link runs at what both ends can do (GPU capable Gen4): not degraded
  assert.equal(p.links[0].degraded, undefined);
  assert.equal(p.links[0].maxSpeed, 16);
});

test("BW-18 host bridge with p2pSplitBytes 64: Gen5 leg 45.829, Gen4 leg 28.807 → 28.807; Gen4 NIC → 22.915", () => {
  const a = gpuNicMachine({ split: 64 });
  const p = pathPerformance(a.gpu, a.nic);
  assert.deepEqual(
    p.links.map((l) => [l.tlpPayload, f(l.effectiveGBps)]),
    [
      [256, "28.807"],
      [256, "57.614"],
      [64, "45.829"],
    ],
  );
  assert.equal(f(p.effectiveGBps), "28.807");
  assert.equal(p.limit, "link 0000:02:00.0<->0000:03:00.0");
  assert.match(p.pattern, /re-split to 64 B/);

  const b = gpuNicMachine({ split: 64, nicSpeed: 16 });
  const q = pathPerformance(b.gpu, b.nic);
  assert.equal(f(q.effectiveGBps), "22.915");
  assert.equal(q.limit, "link 0000:00:02.0<->0000:04:00.0");
  assert.equal(f(q.bandwidthGBps), "31.508");
});

test("BW-23 data direct: NIC PF on another socket (p2pForwardGBps 20) → 20.000 'host bridge forwarding'; DMA PF under the GPU's switch → 57.614", () => {
  const yaml = `
name: bw23
hostBridges:
  - domain: 0
    bus: 0
    name: socket0
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:1234" }
      - at: "01.0"
        kind: root-port
        id: "8086:a110"
        mps: 256
        link: { speed: 32, width: 16 }
        below:
          - at: "00.0"
            kind: upstream-port
            id: "10b5:c010"
            mps: 256
            link: { speed: 32, width: 16 }
            below:
              - at: "00.0"
                kind: downstream-port
                id: "10b5:c010"
                mps: 256
                link: { speed: 32, width: 16 }
                below:
                  - { at: "00.0", name: GPU, id: "10de:2330", mps: 256, link: { speed: 32, width: 16 } }
              - at: "01.0"
                kind: downstream-port
                id: "10b5:c010"
                mps: 256
                link: { speed: 32, width: 16 }
                below:
                  - { at: "00.0", name: DMA-PF, id: "15b3:2100", mps: 256, link: { speed: 32, width: 16 } }
  - domain: 0
    bus: 0x80
    name: socket1
    p2pForwardGBps: 20
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:1234" }
      - at: "01.0"
        kind: root-port
        id: "8086:a110"
        mps: 256
        link: { speed: 32, width: 16 }
        below:
          - { at: "00.0", name: NIC-PF, id: "15b3:1021", mps: 256, link: { speed: 32, width: 16 } }
`;
  const { fabric } = parseMachineFile(yaml, "bw23.yaml");
  const gpu = fabric.endpoints().find((d) => d.name === "GPU")!;
  const dmaPf = fabric.endpoints().find((d) => d.name === "DMA-PF")!;
  const nicPf = fabric.endpoints().find((d) => d.name === "NIC-PF")!;

  const ordinary = pathPerformance(nicPf, gpu);
  assert.equal(f(ordinary.effectiveGBps), "20.000");
  assert.equal(ordinary.limit, "host bridge forwarding");
  assert.equal(ordinary.hostBridges.length, 2); // across the CPU interconnect
  assert.equal(f(ordinary.bandwidthGBps), "63.015");

  const direct = pathPerformance(dmaPf, gpu);
  assert.equal(f(direct.effectiveGBps), "57.614");
  assert.match(direct.limit, /^link /);
  assert.deepEqual(direct.hostBridges, []);
  assert.equal(direct.hops, 2); // DMA PF ↔ its DSP, DSP ↔ GPU: the switch's upstream link is not crossed
});

test("BW-31 matrix figures: Gen4 x16 bottleneck → 31.508 / 28.807; Gen6 x16 flit-mode bottleneck → 128.000 / 111.059", () => {
  const yaml = `
name: bw31
hostBridges:
  - domain: 0
    bus: 0
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:1234" }
      - at: "01.0"
        kind: root-port
        id: "8086:a110"
        mps: 512
        link: { speed: 64, width: 16, flit: true }
        below:
          - { at: "00.0", name: A, id: "10de:0001", mps: 512, link: { speed: 64, width: 16, flit: true } }
      - at: "02.0"
        kind: root-port
        id: "8086:a110"
        mps: 512
        link: { speed: 64, width: 16, flit: true }
        below:
          - { at: "00.0", name: B, id: "10de:0001", mps: 512, link: { speed: 64, width: 16, flit: true } }
      - at: "03.0"
        kind: root-port
        id: "8086:a110"
        mps: 256
        link: { speed: 16, width: 16 }
        below:
          - { at: "00.0", name: C, id: "10de:0002", mps: 256, link: { speed: 16, width: 16 } }
`;
  const { fabric } = parseMachineFile(yaml, "bw31.yaml");
  const [a, b, c] = ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0"].map((x) => fabric.get(x));
  const gen4 = pathPerformance(a, c);
  assert.equal(f(gen4.bandwidthGBps), "31.508");
  assert.equal(f(gen4.effectiveGBps), "28.807");
  assert.equal(gen4.limit, "link 0000:00:03.0<->0000:03:00.0");
  assert.equal(gen4.pattern, "posted 256-B writes, 4-DW header, NFM/FM");
  const gen6 = pathPerformance(a, b);
  assert.equal(f(gen6.bandwidthGBps), "128.000");
  assert.equal(f(gen6.effectiveGBps), "111.059");
  assert.ok(gen6.links.every((l) => l.flit));
  assert.equal(gen6.pattern, "posted 256-B writes, 4-DW header, FM");
  // JSON-facing figures carry 3 decimals at most
  assert.equal(gen4.effectiveGBps, 28.807);
  assert.equal(gen4.bandwidthGBps, 31.508);
});

const specF = () => parseMachineFile(readFileSync("data/machines/spec-f.yaml", "utf8"), "spec-f.yaml").fabric;

test("path: two RCiEPs have no link → bandwidth null, limit 'no PCIe link on the path'", () => {
  const fab = specF();
  const p = pathPerformance(fab.get("0000:00:04.0"), fab.get("0000:00:05.0"));
  assert.equal(p.bandwidthGBps, null);
  assert.equal(p.effectiveGBps, null);
  assert.equal(p.limit, "no PCIe link on the path");
  assert.equal(p.hops, 0);
});

test("path: a VF uses its PF's link; MPS is the smallest on the path; degraded links are flagged", () => {
  const fab = specF();
  const epa = fab.endpoints().find((d) => d.name === "EPa")!;
  const vf = fab.endpoints().find((d) => d.isVirtfn)!;
  const p = pathPerformance(vf, epa);
  assert.equal(p.links[0].lower, vf.physfn);
  // spec-f leaves MPS at 128: 128-B writes, Gen4 x16 → 31.5077 × 128/152
  assert.equal(p.pattern, "posted 128-B writes, 4-DW header, NFM");
  assert.equal(f(p.effectiveGBps), "26.533");

  const yaml = `
name: degraded
hostBridges:
  - domain: 0
    bus: 0
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:1234" }
      - at: "01.0"
        kind: root-port
        id: "8086:a110"
        mps: 256
        link: { speed: 16, width: 16 }
        below:
          - { at: "00.0", id: "10de:0001", mps: 256, link: { speed: 8, width: 8, maxSpeed: 16, maxWidth: 16 } }
      - at: "02.0"
        kind: root-port
        id: "8086:a110"
        mps: 256
        link: { speed: 16, width: 16 }
        below:
          - { at: "00.0", id: "10de:0001", mps: 256, link: { speed: 16, width: 16 } }
`;
  const d = parseMachineFile(yaml, "degraded.yaml").fabric;
  const q = pathPerformance(d.get("01:00.0"), d.get("02:00.0"));
  assert.equal(q.links[0].degraded, "degraded (capable Gen4 x16)");
  assert.equal(f(q.bandwidthGBps), "7.877");
  assert.equal(q.links[1].degraded, undefined);
});

test("path: reads are bounded by outstanding reads; host-staged copies by the host memory hop; engines by 'dma engine'", () => {
  const { gpu, nic } = gpuNicMachine();
  const r = pathPerformance(gpu, nic, { pattern: "read", tags: 32, rttUs: 1, mrrs: 512 });
  assert.equal(r.limit, "outstanding reads");
  assert.equal(f(r.effectiveGBps), "16.384");
  const r2 = pathPerformance(gpu, nic, { pattern: "read", tags: 256, mrrs: 512 });
  assert.equal(r2.limit, "link 0000:02:00.0<->0000:03:00.0");
  assert.equal(f(r2.effectiveGBps), "29.225");

  const s = pathPerformance(gpu, nic, { hostStaged: { hostHopGBps: 20 } });
  assert.equal(s.limit, "host memory hop");
  assert.equal(f(s.effectiveGBps), "20.000");

  gpu.perf.dmaEngineGBps = 12.5;
  const e = pathPerformance(gpu, nic);
  assert.equal(e.limit, "dma engine");
  assert.equal(f(e.effectiveGBps), "12.500");
});
