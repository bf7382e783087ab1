import assert from "node:assert/strict";
import { test } from "node:test";
import type { DmaEngine } from "../../src/dataplane/index.js";
import type { MachineEvent } from "../../src/machine/events.js";
import {
  decodeCqe,
  encodeSqe,
  NVME_ADMIN,
  NVME_CC_EN,
  NVME_CMBSZ_SQS,
  NVME_CMBSZ_WDS,
  NVME_CSTS_CFS,
  NVME_CSTS_RDY,
  NVME_IO,
  NVME_REG,
  NvmeController,
  type NvmeControllerOptions,
  NvmeHost,
} from "../../src/nvme/index.js";
import type { PciDev } from "../../src/pci/device.js";
import { PCI_COMMAND_MEMORY } from "../../src/pci/regs.js";
import { resetFunction } from "../../src/pci/reset.js";
import { bytes, fromText, type Rig, storageRdma, switchMachine } from "../dataplane/helpers.js";

interface NvmeRig extends Rig {
  nvme: PciDev;
  nic: PciDev;
  ctrl: NvmeController;
  host: NvmeHost;
}

function storage(opts: NvmeControllerOptions = {}): NvmeRig {
  const r = storageRdma();
  const nvme = r.dev("nvme0");
  const ctrl = new NvmeController(r.e, nvme, opts);
  return { ...r, nvme, nic: r.dev("mlx5_0"), ctrl, host: new NvmeHost(r.e, ctrl) };
}

const le32 = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
};

const ok = (c: { status: { sct: number; sc: number } }) => c.status.sct === 0 && c.status.sc === 0;

function eventsSince(r: Rig, mark: number): MachineEvent[] {
  return r.m.log.since(mark).map((x) => x.event);
}

/** A peer (the NIC) submits a command into a CMB-resident SQ and rings the doorbell, both by DMA. */
function peerSubmit(e: DmaEngine, peer: PciDev, host: NvmeHost, qid: number, sqe: Uint8Array) {
  const cmd = e.dmaWrite(peer, host.sqSlotBus(qid), sqe, { addressKind: "bus" });
  const tail = host.advanceTail(qid);
  const bell = e.dmaWrite(peer, host.doorbellBus(qid, "sq"), le32(tail), { addressKind: "bus" });
  return { cmd, bell };
}

test("NVMe registers: CAP, VS, CMBLOC/CMBSZ consistent with the 64 MiB BAR2 CMB; read-only registers ignore writes", () => {
  const r = storage();
  const { host, ctrl, nvme } = r;
  const cap = BigInt(host.reg32(0)) | (BigInt(host.reg32(4)) << 32n);
  assert.equal(Number(cap & 0xffffn), 1023); // MQES
  assert.equal((cap >> 16n) & 1n, 1n); // CQR
  assert.equal((cap >> 32n) & 0xfn, 0n); // DSTRD
  assert.equal((cap >> 37n) & 1n, 1n); // CSS NVM
  assert.equal(host.reg32(NVME_REG.VS), 0x00010300);
  const loc = host.reg32(NVME_REG.CMBLOC);
  const sz = host.reg32(NVME_REG.CMBSZ);
  assert.equal(ctrl.cmbBar, 2);
  assert.equal(loc & 7, 2); // BIR
  assert.equal(loc >>> 12, 0); // OFST
  const unit = 4096n << BigInt(4 * ((sz >> 8) & 0xf));
  assert.equal(BigInt(sz >>> 12) * unit, nvme.resources[2].len);
  assert.ok(sz & NVME_CMBSZ_SQS && sz & NVME_CMBSZ_WDS);
  assert.deepEqual(ctrl.cmbBusRange, { start: nvme.busAddress(2), end: nvme.busAddress(2) + (64n << 20n) });
  host.setReg32(NVME_REG.VS, 0x12345678);
  host.setReg32(NVME_REG.CSTS, 0xffffffff);
  assert.equal(host.reg32(NVME_REG.VS), 0x00010300);
  assert.equal(host.reg32(NVME_REG.CSTS), 0);
});

test("NVMe enable: CC.EN → CSTS.RDY; CC.EN cleared → reset (queues gone, RDY 0)", () => {
  const r = storage();
  const mark = r.m.log.length;
  assert.equal(r.host.enable(), true);
  assert.equal(r.host.reg32(NVME_REG.CSTS) & NVME_CSTS_RDY, NVME_CSTS_RDY);
  assert.ok(r.ctrl.queue("sq", 0) && r.ctrl.queue("cq", 0));
  const st = eventsSince(r, mark).find((x) => x.kind === "nvme-state");
  assert.ok(st && st.kind === "nvme-state" && st.state === "enabled");
  r.host.setReg32(NVME_REG.CC, r.host.reg32(NVME_REG.CC) & ~NVME_CC_EN);
  assert.equal(r.host.reg32(NVME_REG.CSTS) & NVME_CSTS_RDY, 0);
  assert.equal(r.ctrl.queue("sq", 0), undefined);
});

test("NVMe enable with bad admin queue attributes → Controller Fatal Status", () => {
  const r = storage();
  r.host.setReg32(NVME_REG.AQA, 0); // 1-entry queues
  r.host.setReg32(NVME_REG.CC, NVME_CC_EN);
  assert.equal(r.host.reg32(NVME_REG.CSTS) & NVME_CSTS_CFS, NVME_CSTS_CFS);
  assert.equal(r.ctrl.ready, false);
});

test("NVMe Identify (0x06): controller and namespace data land in host memory through the IOMMU", () => {
  const r = storage({ namespaceBlocks: 4096n });
  r.host.enable();
  const buf = r.host.alloc(4096);
  const c = r.host.admin({ opcode: NVME_ADMIN.IDENTIFY, cid: r.host.cid(), prp1: buf.dma, cdw10: 1 });
  assert.ok(ok(c));
  const id = r.e.ram.read(buf.phys, 4096);
  const v = new DataView(id.buffer);
  assert.equal(v.getUint16(0, true), 0x144d);
  assert.equal(id[512], 0x66);
  assert.equal(id[513], 0x44);
  assert.equal(v.getUint32(516, true), 1);
  assert.match(new TextDecoder().decode(id.subarray(24, 64)), /nvme0 PM1735/);
  const ns = r.host.admin({
    opcode: NVME_ADMIN.IDENTIFY,
    cid: r.host.cid(),
    nsid: 1,
    prp1: buf.dma,
    cdw10: 0,
  });
  assert.ok(ok(ns));
  const nv = new DataView(r.e.ram.read(buf.phys, 4096).buffer);
  assert.equal(nv.getBigUint64(0, true), 4096n);
  assert.equal((nv.getUint32(128, true) >> 16) & 0xff, 9); // LBADS 512
  const bad = r.host.admin({
    opcode: NVME_ADMIN.IDENTIFY,
    cid: r.host.cid(),
    nsid: 7,
    prp1: buf.dma,
    cdw10: 0,
  });
  assert.deepEqual([bad.status.sct, bad.status.sc], [0, 0x0b]);
});

test("NVMe Create I/O CQ/SQ (0x05, 0x01) and their errors", () => {
  const r = storage();
  const h = r.host;
  h.enable();
  assert.ok(ok(h.createIoCq(1, 16)));
  assert.ok(ok(h.createIoSq(1, 16, 1)));
  const st = (c: { status: { sct: number; sc: number } }) => [c.status.sct, c.status.sc];
  assert.deepEqual(st(h.createIoCq(1, 16)), [1, 0x01]); // Invalid Queue Identifier (exists)
  assert.deepEqual(st(h.createIoSq(2, 16, 9)), [1, 0x00]); // Completion Queue Invalid
  assert.deepEqual(st(h.createIoCq(2, 4096)), [1, 0x02]); // Invalid Queue Size (> MQES + 1)
  const del = h.admin({ opcode: NVME_ADMIN.DELETE_CQ, cid: h.cid(), cdw10: 1 });
  assert.deepEqual(st(del), [1, 0x0c]); // Invalid Queue Deletion: SQ1 still uses it
  assert.ok(ok(h.admin({ opcode: NVME_ADMIN.DELETE_SQ, cid: h.cid(), cdw10: 1 })));
  assert.ok(ok(h.admin({ opcode: NVME_ADMIN.DELETE_CQ, cid: h.cid(), cdw10: 1 })));
  assert.deepEqual(st(h.admin({ opcode: 0x7f, cid: h.cid() })), [0, 0x01]); // Invalid Command Opcode
  const nq = h.admin({ opcode: NVME_ADMIN.SET_FEATURES, cid: h.cid(), cdw10: 0x07, cdw11: 0x00030003 });
  assert.ok(ok(nq));
  assert.equal(nq.dw0 & 0xffff, r.ctrl.maxIoQueues - 1);
});

test("NVMe I/O Write and Read (0x01/0x02) with data in host memory: PRP1, PRP2 and a PRP list", () => {
  const r = storage();
  const h = r.host;
  h.enable();
  h.createIoCq(1, 8);
  h.createIoSq(1, 8, 1);
  const src = h.alloc(16384);
  const data = bytes(16384, 11);
  r.e.ram.write(src.phys, data);
  // 16 KiB: PRP1 + a PRP list of three entries
  const list = h.alloc(4096);
  const entries = new Uint8Array(24);
  const dv = new DataView(entries.buffer);
  for (let i = 0; i < 3; i++) dv.setBigUint64(8 * i, src.dma + BigInt(4096 * (i + 1)), true);
  r.e.ram.write(list.phys, entries);
  h.submit(1, {
    opcode: NVME_IO.WRITE,
    cid: 5,
    nsid: 1,
    prp1: src.dma,
    prp2: list.dma,
    cdw10: 100,
    cdw12: 31,
  });
  const c = h.reap(1);
  assert.equal(c.length, 1);
  assert.ok(ok(c[0]));
  assert.equal(c[0].cid, 5);
  assert.deepEqual(r.ctrl.namespace.read(100n * 512n, 16384), data);
  // read 8 KiB back through PRP1 + PRP2
  const dst = h.alloc(8192);
  h.submit(1, {
    opcode: NVME_IO.READ,
    cid: 6,
    nsid: 1,
    prp1: dst.dma,
    prp2: dst.dma + 4096n,
    cdw10: 100,
    cdw12: 15,
  });
  assert.ok(ok(h.reap(1)[0]));
  assert.deepEqual(r.e.ram.read(dst.phys, 8192), data.subarray(0, 8192));
  // LBA out of range
  h.submit(1, {
    opcode: NVME_IO.READ,
    cid: 7,
    nsid: 1,
    prp1: dst.dma,
    cdw10: 0xffff_fff0,
    cdw11: 0,
    cdw12: 0,
  });
  const lr = h.reap(1)[0];
  assert.deepEqual([lr.status.sct, lr.status.sc], [0, 0x80]);
});

test("NVMe: SQ in the CMB, command and data written into the CMB by the RDMA NIC, doorbell rung by the NIC → data in the namespace, completion posted", () => {
  const r = storage();
  const { e, host, nic, nvme, ctrl } = r;
  assert.ok(host.enable());
  assert.ok(ok(host.createIoCq(1, 16)));
  assert.ok(ok(host.createIoSq(1, 16, 1, { cmbOffset: 0n })));
  assert.equal(ctrl.queue("sq", 1)?.base, nvme.busAddress(2));
  const dataOff = 0x10_0000n;
  const payload = bytes(4096, 42);
  const mark = r.m.log.length;
  const dw = e.dmaWrite(nic, host.cmb(dataOff).bus, payload, {
    addressKind: "bus",
    tph: { st: 0xf0, ph: 2 },
  });
  assert.equal(dw.status, "SC");
  assert.equal(dw.route?.turn.kind, "switch");
  const sqe = encodeSqe({
    opcode: NVME_IO.WRITE,
    cid: 0x77,
    nsid: 1,
    prp1: host.cmb(dataOff).bus,
    cdw10: 64,
    cdw12: 7,
  });
  const { cmd, bell } = peerSubmit(e, nic, host, 1, sqe);
  assert.equal(cmd.status, "SC");
  assert.equal(bell.status, "SC");
  // requester of the command and doorbell TLPs: the NIC
  for (const t of [...cmd.tlps.entries, ...bell.tlps.entries])
    assert.ok(
      t.header.header.kind === "mem" && t.header.header.requesterId === ((nic.busNumber << 8) | nic.devfn),
    );
  assert.deepEqual(ctrl.namespace.read(64n * 512n, 4096), payload);
  const ev = eventsSince(r, mark);
  const cqes = host.reap(1);
  assert.equal(cqes.length, 1);
  assert.equal(cqes[0].cid, 0x77);
  assert.equal(cqes[0].sqid, 1);
  assert.equal(cqes[0].sqhd, 1);
  assert.equal(cqes[0].phase, 1);
  assert.ok(ok(cqes[0]));
  // the log: NIC doorbell write, then the controller fetched from its CMB (no DMA read), executed, completed
  const kinds = ev.filter((x) => x.kind !== "tlp").map((x) => x.kind);
  // data, command, doorbell (all by the NIC), then the controller's reaction after the doorbell landed
  assert.deepEqual(kinds, [
    "dma-write",
    "dma-write",
    "dma-write",
    "nvme-doorbell",
    "nvme-command",
    "dma-write",
    "nvme-completion",
  ]);
  const db = ev.find((x) => x.kind === "nvme-doorbell");
  assert.ok(
    db &&
      db.kind === "nvme-doorbell" &&
      db.requester === nic.bdf &&
      db.doorbell === "SQ1 tail" &&
      db.value === 1,
  );
  const c = ev.find((x) => x.kind === "nvme-command");
  assert.ok(c && c.kind === "nvme-command" && c.fetchedFrom === "cmb" && c.name === "Write");
  assert.ok(!ev.some((x) => x.kind === "dma-read" && x.initiator === nvme.bdf));
  // the completion went to host memory through the NVMe's IOMMU domain
  const cw = ev.filter((x) => x.kind === "dma-write" && x.initiator === nvme.bdf);
  assert.ok(
    cw.length === 1 && cw[0].kind === "dma-write" && cw[0].status === "SC" && cw[0].target.startsWith("RAM"),
  );
});

test("NVMe revoked: COMMAND.MEMORY clear → the peer's command and doorbell writes are Unsupported Requests; nothing executes", () => {
  const r = storage();
  const { e, host, nic, nvme, ctrl } = r;
  host.enable();
  host.createIoCq(1, 16);
  host.createIoSq(1, 16, 1, { cmbOffset: 0n });
  nvme.command &= ~PCI_COMMAND_MEMORY;
  const before = ctrl.stats.commands;
  const sqe = encodeSqe({
    opcode: NVME_IO.WRITE,
    cid: 9,
    nsid: 1,
    prp1: host.cmb(0x1000n).bus,
    cdw10: 0,
    cdw12: 0,
  });
  const { cmd, bell } = peerSubmit(e, nic, host, 1, sqe);
  assert.equal(cmd.status, "UR");
  assert.equal(bell.status, "UR");
  assert.equal(cmd.bytesDelivered + bell.bytesDelivered, 0);
  assert.equal(ctrl.stats.commands, before);
  assert.equal(ctrl.queue("sq", 1)?.tail, 0);
  assert.deepEqual(host.reap(1), []);
});

test("NVMe: SQ in host memory → commands fetched by the controller's own DMA; a full CQ stalls until the head moves", () => {
  const r = storage();
  const { host, ctrl, nvme } = r;
  host.enable();
  host.createIoCq(1, 2); // holds one completion at a time
  host.createIoSq(1, 8, 1);
  const mark = r.m.log.length;
  host.submit(1, { opcode: NVME_IO.FLUSH, cid: 1, nsid: 1 });
  const ev = eventsSince(r, mark);
  assert.ok(ev.some((x) => x.kind === "dma-read" && x.initiator === nvme.bdf && x.length === 64));
  const cmd = ev.find((x) => x.kind === "nvme-command");
  assert.ok(cmd && cmd.kind === "nvme-command" && cmd.fetchedFrom === "host" && cmd.name === "Flush");
  // the 2-entry CQ holds cid 1: the next command waits (tail + 1 == head)
  const c1 = ctrl.stats.completions;
  host.submit(1, { opcode: NVME_IO.FLUSH, cid: 2, nsid: 1 });
  assert.equal(ctrl.stats.completions, c1); // CQ already holds cid 1
  // reaping moves the CQ head and rings its doorbell: the stalled command runs
  const got = host.reap(1);
  assert.deepEqual(
    got.map((c) => c.cid),
    [1],
  );
  assert.equal(ctrl.stats.completions, c1 + 1);
  assert.deepEqual(
    host.reap(1).map((c) => c.cid),
    [2],
  );
});

test("NVMe doorbells: stride 4 << DSTRD; a doorbell of a missing queue or a bad value is rejected", () => {
  const r = storage({ dstrd: 1 });
  const { host, ctrl } = r;
  assert.equal(ctrl.doorbellOffset(0, "sq"), 0x1000);
  assert.equal(ctrl.doorbellOffset(0, "cq"), 0x1008);
  assert.equal(ctrl.doorbellOffset(3, "sq"), 0x1000 + 6 * 8);
  assert.ok(host.enable());
  assert.ok(ok(host.admin({ opcode: NVME_ADMIN.SET_FEATURES, cid: host.cid(), cdw10: 7 })));
  const mark = r.m.log.length;
  host.setReg32(ctrl.doorbellOffset(5, "sq"), 1);
  host.setReg32(ctrl.doorbellOffset(0, "sq"), 999);
  const rej = eventsSince(r, mark).filter((x) => x.kind === "nvme-doorbell");
  assert.equal(rej.length, 2);
  assert.ok(rej.every((x) => x.kind === "nvme-doorbell" && !x.accepted));
});

test("NVMe: a command fetch the IOMMU refuses is fatal (CSTS.CFS)", () => {
  const r = storage();
  const { host } = r;
  host.enable();
  // point an I/O SQ at an IOVA nobody mapped
  const c = host.admin({
    opcode: NVME_ADMIN.CREATE_CQ,
    cid: host.cid(),
    prp1: host.alloc(4096).dma,
    cdw10: 1 | (7 << 16),
    cdw11: 1,
  });
  assert.ok(ok(c));
  assert.ok(
    ok(
      host.admin({
        opcode: NVME_ADMIN.CREATE_SQ,
        cid: host.cid(),
        prp1: 0x7000_0000n,
        cdw10: 1 | (7 << 16),
        cdw11: 1 | (1 << 16),
      }),
    ),
  );
  host.setReg32(r.ctrl.doorbellOffset(1, "sq"), 1);
  assert.equal(host.reg32(NVME_REG.CSTS) & NVME_CSTS_CFS, NVME_CSTS_CFS);
});

test("NVMe on a small machine file: CMB named by the file, CQ in the CMB too, all by CPU stores", () => {
  const r = fromText(switchMachine());
  const ssd = r.dev("SSD");
  const ctrl = new NvmeController(r.e, ssd);
  assert.equal(ctrl.cmbBar, 2);
  const host = new NvmeHost(r.e, ctrl);
  assert.ok(host.enable());
  assert.ok(ok(host.createIoCq(1, 4, { cmbOffset: 0x8000n })));
  assert.ok(ok(host.createIoSq(1, 4, 1, { cmbOffset: 0n })));
  const buf = host.alloc(512);
  r.e.ram.write(buf.phys, bytes(512, 3));
  host.submit(1, { opcode: NVME_IO.WRITE, cid: 3, nsid: 1, prp1: buf.dma, cdw10: 1, cdw12: 0 });
  const c = host.reap(1);
  assert.equal(c.length, 1);
  assert.ok(ok(c[0]));
  assert.deepEqual(ctrl.namespace.read(512n, 512), bytes(512, 3));
  // the CQE sits in the CMB
  assert.equal(decodeCqe(r.e.bars.peek(ssd, 2, 0x8000, 16)).cid, 3);
});

test("NVMe: a PCI function reset (FLR) is a controller reset — queues gone, CC and CSTS back to 0, commands ignored until re-enabled — while the CMB keeps its bytes", () => {
  const r = storage();
  const { e, host, nic, nvme, ctrl } = r;
  assert.ok(host.enable());
  host.createIoCq(1, 16);
  host.createIoSq(1, 16, 1, { cmbOffset: 0n });
  const marker = bytes(64, 9);
  e.dmaWrite(nic, host.cmb(0x2000n).bus, marker, { addressKind: "bus" });
  const mark = r.m.log.length;
  assert.equal(resetFunction(nvme).method, "flr");
  assert.equal(ctrl.ready, false);
  assert.equal(host.reg32(NVME_REG.CC), 0);
  assert.equal(host.reg32(NVME_REG.CSTS), 0);
  assert.equal(ctrl.queue("sq", 1), undefined);
  assert.ok(eventsSince(r, mark).some((x) => x.kind === "nvme-state" && x.state === "disabled"));
  assert.deepEqual(e.cpuRead(host.cmb(0x2000n).cpu, 64).data, marker);
  // a peer's command now rings a doorbell of a queue that does not exist: nothing runs
  const before = ctrl.stats.commands;
  peerSubmit(e, nic, host, 1, encodeSqe({ opcode: NVME_IO.FLUSH, cid: 5, nsid: 1 }));
  assert.equal(ctrl.stats.commands, before);
  // and the controller comes back like a new one
  assert.ok(host.enable());
  assert.ok(ok(host.createIoCq(1, 16)));
  assert.ok(ok(host.createIoSq(1, 16, 1, { cmbOffset: 0n })));
});
