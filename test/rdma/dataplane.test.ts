/**
 * The RDMA data plane end to end: a VFIO dma-buf, an mlx5 MR on it, RDMA WRITEs that become TLPs
 * from the NIC through the fabric into the exporter's BAR — and nothing at all once revoked.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UserBuffer } from "../../src/core/file.js";
import { DmaEngine } from "../../src/dataplane/engine.js";
import { parseMachineFile } from "../../src/import/machine-file.js";
import { Machine } from "../../src/machine/machine.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import {
  IB_ACCESS,
  ibvAllocPd,
  ibvDeregMr,
  ibvOpenDevice,
  ibvRegDmabufMr,
  RdmaCore,
  RdmaDataPlane,
  rdmaOf,
} from "../../src/rdma/index.js";
import { decodeTlp } from "../../src/tlp/decode.js";
import { summaryLine } from "../../src/tlp/render.js";
import {
  encodeDmaBufTph,
  encodeFeatureDmaBuf,
  VFIO_DMA_BUF_TPH_ST,
  VFIO_IOCTL,
} from "../../src/vfio/index.js";

/** A Gen6 flit-mode switch holding the exporter (BAR1 at 0x20E0_0000_0000) and a ConnectX-8 at 04:00.0. */
const YAML = (tphCompleter: "ext" | "none") => `
name: tlp1
hostBridges:
  - functions:
      - { at: "00.0", kind: host-bridge, id: "8086:2020" }
      - at: "01.0"
        kind: root-port
        id: "8086:2030"
        link: { speed: 64, width: 16, flit: true }
        tphCompleter: ext
        mps: 256
        below:
          - at: "00.0"
            kind: upstream-port
            id: "1000:c030"
            link: { speed: 64, width: 16, flit: true }
            mps: 256
            below:
              - at: "00.0"
                kind: downstream-port
                id: "1000:c030"
                link: { speed: 64, width: 16, flit: true }
                mps: 256
                below:
                  - at: "00.0"
                    id: "10de:2901"
                    class: 0x030200
                    name: exporter
                    driver: vfio-pci
                    tphCompleter: ${tphCompleter}
                    link: { speed: 64, width: 16, flit: true }
                    mps: 256
                    bars:
                      - { index: 0, type: mem32, size: 16MiB }
                      - { index: 1, type: mem64, prefetch: true, size: 256MiB, address: 0x20E0_0000_0000 }
              - at: "01.0"
                kind: downstream-port
                id: "1000:c030"
                link: { speed: 64, width: 16, flit: true }
                mps: 256
                below:
                  - at: "00.0"
                    id: "15b3:1023"
                    class: 0x020700
                    name: nic
                    link: { speed: 64, width: 16, flit: true }
                    mps: 256
                    tph: { modes: [no-st, device-specific], stTable: cap, stTableSize: 64 }
                    bars:
                      - { index: 0, type: mem64, prefetch: true, size: 64MiB }
`;

const ACCESS = IB_ACCESS.LOCAL_WRITE | IB_ACCESS.REMOTE_WRITE | IB_ACCESS.REMOTE_READ;
const IOVA = 0x7f00_0000_0000n;
const OFF = 0x0600_0000n; // dma-buf starts here in BAR1

function boot(tphCompleter: "ext" | "none" = "ext", publish = true) {
  const { fabric } = parseMachineFile(YAML(tphCompleter), "tlp1.yaml");
  const m = new Machine(fabric, { kernel: { moveNotify: true, tphFeature: true } });
  const rdma = rdmaOf(m);
  const ib = rdma.addMlx5Device("0000:04:00.0", { vhcaId: 1 });
  const lib = new RdmaCore(rdma);
  const ctx = ibvOpenDevice(lib, ib.name)!;
  const pd = ibvAllocPd(ctx)!;
  const dev = m.vfio.open("0000:03:00.0");
  const bytes = encodeFeatureDmaBuf({ regionIndex: 1, ranges: [{ offset: OFF, length: 0x10_0000n }] });
  const fd = m.vfio.ioctl(dev, VFIO_IOCTL.VFIO_DEVICE_FEATURE, new UserBuffer(bytes));
  if (publish && tphCompleter !== "none") {
    const set = encodeDmaBufTph({ fd, flags: VFIO_DMA_BUF_TPH_ST, st: 0xf0, ph: 2 });
    assert.equal(m.vfio.ioctl(dev, VFIO_IOCTL.VFIO_DEVICE_FEATURE, new UserBuffer(set)), 0);
  }
  const mr = ibvRegDmabufMr(pd, 0n, 0x10_0000n, IOVA, fd, ACCESS);
  assert.ok(mr, `registration failed: errno ${lib.errno}`);
  const dp = new RdmaDataPlane(rdma);
  return { m, rdma, ib, lib, dev, fd, mr, dp, exporter: m.device("0000:03:00.0") };
}

const payload = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

test("TLP-1 end to end: userspace publishes ST 0xF0 / PH 2 on a VFIO dma-buf, an mlx5 MR on it takes an RDMA WRITE, and the NIC's TLP decodes to the analyzer capture", () => {
  const s = boot();
  const data = payload(32);
  const wc = s.dp.rdmaWrite(s.ib, s.mr.rkey, IOVA + 0x800n, data);
  assert.equal(wc.statusName, "SUCCESS", wc.detail);
  assert.equal(wc.issuer, "0000:04:00.0");
  assert.deepEqual(wc.tph, { st: 0xf0, ph: 2 });
  // the bytes are in the exporter's BAR at dma-buf offset 0x800
  const back = DmaEngine.of(s.m).cpuRead(0x20e0_0000_0000n + OFF + 0x800n, 32);
  assert.deepEqual(back.data, data);
  // the TLP on the NIC's own link, as an analyzer there would capture it
  const first = wc.tlps[0].entries.find((e) => e.link.endsWith("0000:04:00.0"))!;
  assert.equal(first.mode, "fm");
  const line = summaryLine(decodeTlp(first.bytes, { mode: "fm" }));
  assert.match(
    line,
    /^MWr64 TC=0 OHC=2 TS=0 Attr=0 L=8 \/ RID=04:00\.0 EP- Tag=F0h \/ AddrH=000020E0h \/ AddrL=06000800h \/ OHC-B ST=F0h PH=2 HV=1 AMA=0 AV-/,
  );
  assert.deepEqual(s.dp.revokedWrites, []);
});

test("TPH-27 end to end: with an exporter that cannot supply TPH the registration still succeeds and the same write carries no TPH", () => {
  const s = boot("none");
  const wc = s.dp.rdmaWrite(s.ib, s.mr.rkey, IOVA + 0x800n, payload(32));
  assert.equal(wc.statusName, "SUCCESS");
  assert.equal(wc.tph, undefined);
  const first = wc.tlps[0].entries.find((e) => e.link.endsWith("0000:04:00.0"))!;
  assert.match(summaryLine(decodeTlp(first.bytes, { mode: "fm" })), /^MWr64 TC=0 OHC=0 /);
});

test("TPH-31 a VFIO reset revokes: writes while decode is off fail with zero bytes; the buffer keeps its TPH and a re-registration gets the same ST/PH", () => {
  const s = boot();
  const base = 0x20e0_0000_0000n + OFF;
  const engine = DmaEngine.of(s.m);
  assert.equal(s.dp.rdmaWrite(s.ib, s.mr.rkey, IOVA, payload(64, 3)).statusName, "SUCCESS");
  const before = engine.cpuRead(base, 64).data;
  // decode off: the dma-buf is revoked, the MR's umem is invalidated
  s.m.vfio.configWrite(s.dev, PCI_COMMAND, 2, 0x4);
  const wc = s.dp.rdmaWrite(s.ib, s.mr.rkey, IOVA, payload(64, 9));
  assert.equal(wc.statusName, "REM_ACCESS_ERR");
  assert.equal(wc.bytesDelivered, 0);
  assert.equal(wc.tlps.length, 0, "no TLP at all: the NIC cannot translate the address");
  s.m.vfio.configWrite(s.dev, PCI_COMMAND, 2, 0x6);
  assert.deepEqual(engine.cpuRead(base, 64).data, before, "memory untouched while revoked");
  // back after restore: the dynamic MR re-faults, and the TPH is still published
  const again = s.dp.rdmaWrite(s.ib, s.mr.rkey, IOVA, payload(64, 5));
  assert.equal(again.statusName, "SUCCESS");
  assert.deepEqual(again.tph, { st: 0xf0, ph: 2 });
  // VFIO_DEVICE_RESET: revoke + restore inside the ioctl; a new registration gets the same ST/PH
  assert.equal(s.m.vfio.ioctl(s.dev, VFIO_IOCTL.VFIO_DEVICE_RESET, new UserBuffer(new Uint8Array(0))), 0);
  assert.equal(ibvDeregMr(s.mr), 0);
  const ctx = ibvOpenDevice(s.lib, s.ib.name)!;
  const mr2 = ibvRegDmabufMr(ibvAllocPd(ctx)!, 0n, 0x10_0000n, IOVA, s.fd, ACCESS)!;
  assert.deepEqual(s.dp.rdmaWrite(s.ib, mr2.rkey, IOVA, payload(8)).tph, { st: 0xf0, ph: 2 });
  // closing the device: permanent; writes fail for good, still zero bytes anywhere revoked
  s.m.vfio.close(s.dev);
  assert.equal(s.dp.rdmaWrite(s.ib, mr2.rkey, IOVA, payload(8)).statusName, "REM_ACCESS_ERR");
  assert.deepEqual(s.dp.revokedWrites, []);
});

test("an RDMA READ through the MR returns the exporter's bytes; revoked → error and no data", () => {
  const s = boot();
  const data = payload(256, 11);
  assert.equal(s.dp.rdmaWrite(s.ib, s.mr.rkey, IOVA + 0x1000n, data).statusName, "SUCCESS");
  const rd = s.dp.rdmaRead(s.ib, s.mr.rkey, IOVA + 0x1000n, 256);
  assert.equal(rd.statusName, "SUCCESS");
  assert.deepEqual(rd.data, data);
  s.m.vfio.configWrite(s.dev, PCI_COMMAND, 2, 0x4);
  const bad = s.dp.rdmaRead(s.ib, s.mr.rkey, IOVA + 0x1000n, 256);
  assert.equal(bad.statusName, "REM_ACCESS_ERR");
  assert.equal(bad.data, undefined);
});
