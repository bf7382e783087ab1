/**
 * The RDMA half of the demo computes its story: a remote NVMe WRITE made of RDMA WRITEs lands on
 * the namespace, every revoke stops the NIC cold, and the data-direct MR is issued by the DMA PF.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { dataDirect, gpuToGpu, spdkOverRdma } from "../../src/analysis/demo-rdma.js";
import { loadBuiltin } from "../../src/import/builtin.js";

const fresh = () => loadBuiltin("storage-rdma").fabric;

test("demo SPDK over RDMA: the NVMe WRITE submitted by RDMA completes, revokes stop the NIC, nothing lands in revoked memory", () => {
  const r = spdkOverRdma(fresh, "0000:03:00.0", "0000:04:00.0");
  const [setup, exp, reg, io, reset, reinit, again, off, on, close] = r.steps;
  assert.equal(setup.result, "CSTS.RDY, queues created");
  assert.match(exp.result, /^fds \d+, \d+$/);
  assert.equal(reg.result, "0");
  assert.match(io.result, /Successful Completion/);
  assert.ok(io.facts.includes("LBA 64..71 hold the 4 KiB payload"), io.facts.join("\n"));
  // the payload's first bytes ((i * 31 + 7) & 0xff) seen in the CMB, and the command the log says ran
  assert.ok(io.facts.some((f) => f.includes("CMB +0x100000 now holds 07 26 45 64")));
  assert.ok(
    io.facts.some((f) =>
      /executed Write \(opcode 0x01, cid 65, SQ 1\) fetched from the CMB: write LBA 64 \+8/.test(f),
    ),
    io.facts.join("\n"),
  );
  assert.ok(
    io.facts.every((f) => !f.includes("THRU_HOST_BRIDGE")),
    "same switch: bus addresses",
  );
  assert.match(reset.facts[0], /after the reset: SUCCESS/);
  // the function reset was a controller reset: SPDK must bring the queues back
  assert.equal(reset.facts[1], "the controller after the reset: not ready, CC.EN 0, I/O SQ 1 gone");
  assert.equal(reinit.result, "CSTS.RDY, queues created");
  assert.match(again.result, /^cid 66 .*Successful Completion/);
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

test("demo GPU to GPU: a VFIO export of gpu1's BAR1 mapped by gpu0 through the IOMMU takes its write; after a decode-off revoke the same IOVA reaches a GPU that no longer claims it", () => {
  const [map, write, revoked] = gpuToGpu(fresh, "0000:31:00.0", "0000:06:00.0");
  assert.equal(map.result, "0");
  assert.match(map.facts[0], /^THRU_HOST_BRIDGE: DMA address 0x[0-9a-f]+ \(iova\)$/);
  assert.equal(write.result, "256 bytes delivered");
  assert.match(write.facts[1], /reads a0 a1 a2 a3/);
  assert.match(revoked.result, /^UR: 0000:31:00\.0 has Memory Space Enable clear/);
  assert.equal(revoked.facts[0], "move_notify calls: 1");
  assert.match(revoked.facts[1], /0 of 256 bytes/);
});
