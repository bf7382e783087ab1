/** Failure injection on the registration, revocation and probe paths: every failure unwinds fully. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ErrnoName } from "../../src/core/errno.js";
import {
  PCI_EXP_DEVCAP2_ATOMIC_COMP64,
  PCI_EXP_DEVCAP2_ATOMIC_COMP128,
  PCI_EXP_DEVCTL2_ATOMIC_REQ,
} from "../../src/pci/atomic.js";
import { PCI_COMMAND_MASTER, PCI_EXP_DEVCAP2, PCI_EXP_DEVCTL2 } from "../../src/pci/regs.js";
import { DD_MAX_SEG_SIZE, ibvDeregMr } from "../../src/rdma/index.js";
import { BDF, failedClean, IOVA, ok, setup } from "./setup.js";

const SITES: [string, ErrnoName, "dd" | "plain" | "both"][] = [
  ["kzalloc:ib_umem_dmabuf", "ENOMEM", "both"],
  ["mlx5r_umr_resource_init", "ENOMEM", "dd"],
  ["mlx5_core_create_mkey:crossed", "ENOMEM", "dd"],
  ["mlx5r_umr_update_xlt", "EIO", "both"],
  ["mlx5_core_create_mkey:crossing", "ENOMEM", "dd"],
  ["mlx5_core_create_mkey:mr", "ENOMEM", "plain"],
  ["dma_resv_wait_timeout", "ETIMEDOUT", "both"],
  ["sg_alloc_table", "ENOMEM", "both"],
];

test("FAULTS every failure inside REG_DMABUF_MR returns its errno and leaves no attachment, pin, mkey, list entry or reference", () => {
  for (const [site, errno, which] of SITES)
    for (const dd of [true, false]) {
      if ((which === "dd" && !dd) || (which === "plain" && dd)) continue;
      const s = setup();
      const before = s.snapshot();
      s.m.faults.failOn(site, { errno });
      const mr = dd ? s.regDD() : s.regPlain();
      assert.equal(s.m.faults.calls(site) > 0, true, `${site} reached`);
      failedClean(s, before, mr, errno === "ETIMEDOUT" ? "ETIMEDOUT" : errno);
      assert.equal(s.exporter.pinCount, 0, site);
      assert.equal(s.exporter.pinCalls, s.exporter.unpinCalls, `${site}: pins balanced`);
      assert.equal(s.exporter.liveMappings, 0, site);
      // and the next attempt works
      const again = dd ? s.regDD() : s.regPlain();
      assert.ok(again, `${site}: retry errno ${s.lib.errno}`);
      ok(s.write(again, IOVA, 64n));
    }
});

test("FAULTS a UMR failure while revoking on unbind WARNs and leaves that MR's umem alone; dereg still cleans up", () => {
  const s = setup();
  const mr = s.regDD()!;
  const crossed = s.kmr(mr).ddCrossedMr!;
  s.m.faults.failOn("mlx5r_umr_revoke_mr", { errno: "EIO" });
  s.rdma.removeDmaPf(s.dmaPf);
  assert.ok(s.m.diag.has("warn:mlx5_revoke_data_direct_mr"));
  assert.ok(crossed.revoked);
  assert.equal(crossed.umem!.revoked, false, "umem not revoked");
  assert.equal(s.exporter.pinCount, 1);
  assert.equal(ibvDeregMr(mr), 0);
  assert.equal(s.exporter.pinCount, 0);
  assert.equal(s.exporter.attachments, 0);
});

test("FAULTS data-direct init: PD or mkey failure fails creation (-ENOMEM); the RO twin's failure is not fatal", () => {
  for (const site of ["mlx5_cmd_alloc_pd", "mlx5_core_create_mkey:data_direct", "kzalloc:data_direct_reg"]) {
    const s = setup({ order: "pf-only" });
    s.m.faults.failOn(site);
    assert.throws(() => s.addIb(), /ENOMEM/);
    assert.equal(s.rdma.dd.regList.length, 0, site);
    assert.equal(s.rdma.devices.length, 0, site);
  }
  const t = setup({ order: "pf-only" });
  t.m.faults.failOn("mlx5_core_create_mkey:data_direct_ro");
  t.addIb();
  assert.equal(t.ib.ddState, "BOUND");
  assert.equal(t.ib.ddr.mkeyRoValid, false);
  t.open();
  const mr = t.regDD({ access: 7 | (1 << 20) })!;
  assert.equal(t.kmr(mr).ddCrossedMr!.access & (1 << 20), 0, "RO masked without the twin");
});

test("FAULTS probe: enable failure leaves nothing; the AtomicOp chain stops at the first size the root port completes; 2 GiB segments", () => {
  const s = setup({ order: "none" });
  s.m.faults.failOn("pci_enable_device", { errno: "EIO" });
  assert.throws(() => s.rdma.probeDmaPf(s.dmaPf), /EIO/);
  assert.equal(s.rdma.dd.devList.length, 0);
  // root port completing 64- and 128-bit AtomicOps only: 32 fails, 64 succeeds
  const rp = s.m.device(BDF.RP);
  rp.config.write32(
    rp.pcieCapOffset + PCI_EXP_DEVCAP2,
    PCI_EXP_DEVCAP2_ATOMIC_COMP64 | PCI_EXP_DEVCAP2_ATOMIC_COMP128,
  );
  s.rdma.probeDmaPf(s.dmaPf);
  const dev = s.rdma.dd.bound.get(s.dmaPf)!;
  assert.equal(dev.atomicOps, 64);
  assert.ok(s.dmaPf.config.read16(s.dmaPf.pcieCapOffset + PCI_EXP_DEVCTL2) & PCI_EXP_DEVCTL2_ATOMIC_REQ);
  assert.equal(dev.maxSegSize, DD_MAX_SEG_SIZE);
  assert.ok(s.dmaPf.command & PCI_COMMAND_MASTER);
  assert.ok(!s.m.diag.has("debug:data-direct-atomic"));
  // without any completer support: one debug event, probe still succeeds
  const t = setup({ order: "none" });
  t.rdma.probeDmaPf(t.dmaPf);
  assert.equal(t.m.diag.count("debug:data-direct-atomic"), 1);
  assert.equal(t.rdma.dd.bound.get(t.dmaPf)!.atomicOps, null);
});
