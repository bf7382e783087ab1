/**
 * The RDMA half of the demo computes its story: a remote NVMe WRITE made of RDMA WRITEs lands on
 * the namespace, every revoke stops the NIC cold, and the data-direct MR is issued by the DMA PF.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { dataDirect, spdkOverRdma } from "../../src/analysis/demo-rdma.js";
import { loadBuiltin } from "../../src/import/builtin.js";

const fresh = () => loadBuiltin("storage-rdma").fabric;

test("demo SPDK over RDMA: the NVMe WRITE submitted by RDMA completes, revokes stop the NIC, nothing lands in revoked memory", () => {
  const r = spdkOverRdma(fresh, "0000:03:00.0", "0000:04:00.0");
  const [setup, exp, reg, io, reset, off, on, close] = r.steps;
  assert.equal(setup.result, "CSTS.RDY, queues created");
  assert.match(exp.result, /^fds \d+, \d+$/);
  assert.equal(reg.result, "0");
  assert.match(io.result, /Successful Completion/);
  assert.ok(io.facts.includes("LBA 64..71 hold the 4 KiB payload"), io.facts.join("\n"));
  assert.ok(
    io.facts.every((f) => !f.includes("THRU_HOST_BRIDGE")),
    "same switch: bus addresses",
  );
  assert.match(reset.facts[0], /after the reset: SUCCESS/);
  assert.match(off.facts[0], /REM_ACCESS_ERR, 0 bytes delivered .*revoked/);
  assert.match(on.facts[0], /SUCCESS/);
  assert.match(close.facts[0], /REM_ACCESS_ERR, 0 bytes delivered/);
  assert.equal(r.bytesIntoRevokedMemory, 0);
});

test("demo data direct: VUID binds the DMA PF, the DATA_DIRECT MR is issued by it and beats the ordinary MR; a VFIO export refuses the pin (K-64) unless projected", () => {
  const d = dataDirect(fresh, {
    nic: "0000:81:00.0",
    dmaPf: "0000:05:00.0",
    gpu: "0000:06:00.0",
    vfioGpu: "0000:31:00.0",
    vuid: "MT2420XZ0042",
  });
  assert.match(d.sysfsPath, /\/0000:05:00\.0$/);
  const [plain, dd, vfio, projected] = d.registrations;
  assert.equal(plain.issuer, "0000:81:00.0");
  assert.equal(plain.mapType, "THRU_HOST_BRIDGE");
  assert.equal(dd.issuer, "0000:05:00.0");
  assert.equal(dd.mapType, "BUS_ADDR");
  assert.ok((dd.effectiveGBps ?? 0) > (plain.effectiveGBps ?? Infinity));
  assert.match(vfio.result, /^-EOPNOTSUPP .*K-64/);
  assert.equal(vfio.issuer, undefined);
  assert.equal(projected.result, "0");
  assert.equal(projected.projected, true);
  assert.equal(projected.issuer, "0000:05:00.0");
});

test("demo data direct: a NIC whose firmware VUID matches no DMA PF has no data-direct path", () => {
  const d = dataDirect(fresh, {
    nic: "0000:81:00.0",
    dmaPf: "0000:05:00.0",
    gpu: "0000:06:00.0",
    vfioGpu: "0000:31:00.0",
    vuid: "MT0000XZ9999",
  });
  assert.match(d.sysfsPath, /^-EOPNOTSUPP|^-ENODEV/);
  assert.equal(d.registrations[0].issuer, "0000:81:00.0");
  assert.match(d.registrations[1].result, /^-/);
});
