/** rdma-data-direct.md §4, §5.1, §10: the DMA PF driver, matching and binding by VUID (DD-1 … DD-12). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { KernelError } from "../../src/core/errors.js";
import type { FaultPlan } from "../../src/core/fault-inject.js";
import { PCI_COMMAND_MASTER } from "../../src/pci/regs.js";
import { buildVpd, describeVpd, pciVpdFindRoInfoKeyword, pciVpdSize } from "../../src/pci/vpd.js";
import {
  cStringOf,
  ibvAllocPd,
  ibvDeregMr,
  ibvOpenDevice,
  MLX5_CMD_OP_QUERY_VUID,
  mlx5dvGetDataDirectSysfsPath,
  mlx5dvRegDmabufMr,
} from "../../src/rdma/index.js";
import {
  ACCESS,
  BDF,
  DD,
  IOVA,
  LENGTH,
  nicCfg,
  OFFSET,
  ok,
  type Setup,
  setup,
  VUID,
  vpdWith,
} from "./setup.js";

const ENODEV = 19;
const PATH = "/devices/pci0000:00/0000:00:02.0/0000:03:00.0";

function query(s: Setup, ctx = s.ctx): { ret: number; path: string } {
  const buf = new Uint8Array(128);
  const ret = mlx5dvGetDataDirectSysfsPath(ctx, buf);
  return { ret, path: ret ? "" : cStringOf(buf) };
}

function kerr(f: () => unknown): KernelError {
  try {
    f();
  } catch (e) {
    if (e instanceof KernelError) return e;
    throw e;
  }
  assert.fail("expected a KernelError");
}

/** A second IB device on NIC2 with its own context and PD. */
function secondIb(s: Setup, vuid = VUID) {
  const ib2 = s.rdma.addMlx5Device(BDF.NIC2, { vhcaId: 6, firmwareVuid: vuid });
  const ctx2 = ibvOpenDevice(s.lib, ib2.name)!;
  const pd2 = ibvAllocPd(ctx2)!;
  return { ib2, ctx2, pd2 };
}

test("DD-1 DMA PF probed first, then the IB device → BOUND; sysfs path /devices/pci0000:00/0000:00:02.0/0000:03:00.0", () => {
  const s = setup({ order: "pf-first" });
  assert.equal(s.ib.ddState, "BOUND");
  assert.equal(s.ib.dataDirectDev?.pdev, s.dmaPf);
  assert.equal(s.dmaPf.driver, "mlx5_ib");
  assert.deepEqual(query(s), { ret: 0, path: PATH });
  assert.equal(s.rdma.dd.regList.length, 1);
  assert.equal(s.rdma.dd.devList.length, 1);
});

test("DD-2 IB device first (UNBOUND, query ENODEV), then the PF is probed → BOUND, query succeeds", () => {
  const s = setup({ order: "ib-only" });
  assert.equal(s.ib.ddState, "UNBOUND");
  assert.equal(query(s).ret, ENODEV);
  s.rdma.probeDmaPf(s.dmaPf);
  assert.equal(s.ib.ddState, "BOUND");
  assert.deepEqual(query(s), { ret: 0, path: PATH });
});

test("DD-3 VUIDs differing only in letter case never bind; query → ENODEV", () => {
  const s = setup({ order: "pf-first", nic: { firmwareVuid: "mt2514xz0001" } });
  assert.equal(s.ib.ddState, "UNBOUND");
  assert.equal(query(s).ret, ENODEV);
  // nor the other way round
  const t = setup({ order: "ib-only", vpd: vpdWith("mt2514xz0001") });
  t.rdma.probeDmaPf(t.dmaPf);
  assert.equal(t.ib.ddState, "UNBOUND");
});

test("DD-4 VPD VU followed by two NUL bytes matches; followed by a space does not", () => {
  const nul = Uint8Array.from([...VUID].map((c) => c.charCodeAt(0)).concat([0, 0]));
  const s = setup({ order: "pf-first", vpd: vpdWith(nul) });
  assert.equal(s.rdma.dd.devList[0].vuid.length, VUID.length + 3, "data copied verbatim, NUL appended");
  assert.equal(s.ib.ddState, "BOUND");
  const t = setup({ order: "pf-first", vpd: vpdWith(`${VUID} `) });
  assert.equal(t.rdma.dd.devList[0].vuidString, `${VUID} `);
  assert.equal(t.ib.ddState, "UNBOUND");
});

test("DD-5 NIC without cap data_direct (or cap2 query_vuid) → no registration, device created, query ENODEV even after a matching PF", () => {
  for (const caps of [{ dataDirect: false }, { queryVuid: false }]) {
    const s = setup({ order: "ib-only", caps });
    assert.equal(s.ib.ddState, "UNSUPPORTED");
    assert.equal(s.rdma.dd.regList.length, 0);
    assert.ok(!s.ib.cmdLog.some((c) => c.opcode === MLX5_CMD_OP_QUERY_VUID), "QUERY_VUID never issued");
    assert.ok(s.ib.ddLock, "data_direct_lock initialised anyway");
    s.rdma.probeDmaPf(s.dmaPf);
    assert.equal(s.ib.ddState, "UNSUPPORTED");
    assert.equal(query(s).ret, ENODEV);
  }
});

test("DD-6 QUERY_VUID (0xb22) fails with -EIO → IB device creation fails with -ENOMEM; -EIO only as a diagnostic; no registration left", () => {
  const s = setup({ order: "pf-only" });
  const mark = s.m.log.length;
  const e = kerr(() => s.rdma.addMlx5Device(s.nicPf, nicCfg({ nic: { queryVuidErrno: "EIO" } })));
  assert.equal(e.errnoName, "ENOMEM");
  const fw = s.m.log
    .since(mark)
    .flatMap((x) => (x.event.kind === "rdma" && x.event.op === "fw-cmd" ? [x.event] : []));
  assert.equal(fw.length, 1);
  assert.match(fw[0].detail ?? "", /opcode 0xb22 → EIO/);
  const note = s.m.diag.events.find((x) => x.event === "note:mlx5-ib-stage-failed");
  assert.match(note?.detail ?? "", /EIO/);
  assert.equal(s.rdma.dd.regList.length, 0);
  assert.equal(s.rdma.devices.length, 0);
  // the command carried the NIC's own vhca_id and data_direct = 1
  const ib = s.rdma.addMlx5Device(s.nicPf, nicCfg());
  assert.deepEqual(ib.cmdLog[0], { opcode: 0xb22, input: { vhca_id: 5, data_direct: 1 } });
});

test("DD-7 no VPD → probe -ENODEV; no VPD-R or no VU → -ENOENT; nothing listed, function left disabled", () => {
  const cases: [Uint8Array | null, string][] = [
    [null, "ENODEV"],
    [buildVpd({ idString: "ConnectX-8" }), "ENOENT"],
    [buildVpd({ idString: "ConnectX-8", readOnly: [["PN", "900-9X81E"]] }), "ENOENT"],
    [Uint8Array.of(0xff, 0xff, 0xff), "ENODEV"],
  ];
  for (const [vpd, errno] of cases) {
    const s = setup({ order: "none", vpd });
    const e = kerr(() => s.rdma.probeDmaPf(s.dmaPf));
    assert.equal(e.errnoName, errno);
    assert.equal(s.rdma.dd.devList.length, 0);
    assert.equal(s.rdma.dd.bound.size, 0);
    assert.equal(s.dmaPf.driver, null);
    assert.equal(s.dmaPf.command & PCI_COMMAND_MASTER, 0, "bus mastering off again");
  }
});

test("DD-8 two IB devices with the same VUID, one DMA PF → both bound; removing the PF unbinds both and revokes both devices' DD MRs", () => {
  const s = setup();
  const { ib2, ctx2, pd2 } = secondIb(s);
  assert.equal(s.ib.dataDirectDev?.pdev, s.dmaPf);
  assert.equal(ib2.dataDirectDev?.pdev, s.dmaPf);
  const mr1 = s.regDD()!;
  const mr2 = mlx5dvRegDmabufMr(pd2, OFFSET, LENGTH, IOVA, s.exporter.fd, ACCESS, DD)!;
  assert.ok(mr1 && mr2);
  s.rdma.removeDmaPf(s.dmaPf);
  assert.equal(s.ib.ddState, "UNBOUND");
  assert.equal(ib2.ddState, "UNBOUND");
  assert.equal(s.write(mr1, IOVA, 64n).ok, false);
  assert.equal(
    s.rdma.translate(ib2, { key: mr2.rkey, addr: IOVA, length: 64n, access: "remote-write" }).ok,
    false,
  );
  assert.equal(s.exporter.pinCount, 0);
  assert.equal(ibvDeregMr(mr1), 0);
  assert.equal(ibvDeregMr(mr2), 0);
  assert.equal(ctx2.provider, "mlx5");
});

test("DD-9 PFs A then B with one VUID, IB device first → A, then B; removing A unbinds it (though bound to B) and revokes; a new IB device binds to B", () => {
  const s = setup({ order: "ib-only" });
  const A = s.dmaPf;
  const B = s.m.device(BDF.DMA_PF_B);
  s.rdma.probeDmaPf(A);
  assert.equal(s.ib.dataDirectDev?.pdev, A);
  s.rdma.probeDmaPf(B);
  assert.equal(s.ib.dataDirectDev?.pdev, B);
  const mr = s.regDD()!;
  ok(s.write(mr, IOVA, 4096n));
  assert.equal(ok(s.write(mr, IOVA, 4096n)).issuer, B);
  s.rdma.removeDmaPf(A);
  assert.equal(s.ib.ddState, "UNBOUND");
  const w = s.write(mr, IOVA, 4096n);
  assert.equal(w.ok, false);
  assert.equal(!w.ok && w.reason, "revoked");
  const { ib2 } = secondIb(s);
  assert.equal(ib2.dataDirectDev?.pdev, B);
  assert.equal(ibvDeregMr(mr), 0);
});

test("DD-10 PFs A then B present before the IB device → it binds to A (first in the list)", () => {
  const s = setup({ order: "pf-only" });
  s.rdma.probeDmaPf(BDF.DMA_PF_B);
  s.addIb();
  assert.equal(s.ib.dataDirectDev?.pdev.bdf, BDF.DMA_PF);
});

test("DD-11 DMA PF shutdown → device disabled, binding unchanged, no MR revoked", () => {
  const s = setup();
  const mr = s.regDD()!;
  s.rdma.shutdownDmaPf(s.dmaPf);
  assert.equal(s.rdma.dd.bound.get(s.dmaPf)?.enabled, false);
  assert.equal(s.dmaPf.command & PCI_COMMAND_MASTER, 0);
  assert.equal(s.ib.ddState, "BOUND");
  assert.equal(s.ib.dataDirectMrList.length, 1);
  ok(s.write(mr, IOVA, 4096n));
});

test("DD-12 64-bit DMA mask refused, 32-bit accepted → probe succeeds; both refused → probe fails with that errno, list unchanged", () => {
  const s = setup({ order: "none" });
  s.m.faults.failOn("dma_set_mask:64", { errno: "EIO" });
  s.rdma.probeDmaPf(s.dmaPf);
  assert.equal(s.dmaPf.dmaMask, (1n << 32n) - 1n);
  assert.equal(s.rdma.dd.devList.length, 1);

  const t = setup({ order: "none" });
  (t.m.faults as FaultPlan)
    .failOn("dma_set_mask:64", { errno: "EIO" })
    .failOn("dma_set_mask:32", { errno: "EIO" });
  assert.equal(kerr(() => t.rdma.probeDmaPf(t.dmaPf)).errnoName, "EIO");
  assert.equal(t.rdma.dd.devList.length, 0);
  assert.equal(t.dmaPf.driver, null);
  assert.equal(t.dmaPf.command & PCI_COMMAND_MASTER, 0);
});

test("VPD byte format: size walk, RO keyword lookup, checksum RV, describe", () => {
  const v = vpdWith(VUID);
  assert.equal(v[0], 0x82);
  assert.equal(v[v.length - 1], 0x78);
  assert.equal(pciVpdSize(v), v.length);
  // RV makes the sum up to its byte zero
  const rv = v.indexOf(0x52, v.indexOf(0x90));
  let sum = 0;
  for (let i = 0; i <= rv + 3; i++) sum += v[i];
  assert.equal(sum & 0xff, 0);
  assert.equal(String.fromCharCode(...pciVpdFindRoInfoKeyword(v, "VU")), VUID);
  assert.deepEqual(describeVpd(v).readOnly.VU, VUID);
  // trailing garbage after the end tag is not part of the VPD
  assert.equal(pciVpdSize(Uint8Array.from([...v, 1, 2, 3])), v.length);
  // a keyword running past the buffer → -EINVAL
  const bad = Uint8Array.of(0x90, 5, 0, 0x56, 0x55, 200, 0x41, 0x42);
  assert.equal(kerr(() => pciVpdFindRoInfoKeyword(bad, "VU")).errnoName, "EINVAL");
  // the machine file's fields became real VPD bytes
  const s = setup({ order: "none" });
  const ro = describeVpd(s.dmaPf.vpd!).readOnly;
  assert.equal(ro.PN, "900-9X81E-00EX");
  assert.equal(ro.VU, VUID);
  assert.ok("RV" in ro);
});
