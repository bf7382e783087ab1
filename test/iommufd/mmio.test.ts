/**
 * §13.11 vfio_dma_mapping_mmio_test: the user VA of an mmapped BAR mapped through the three
 * backends. Type1 walks the PFN map and maps it; iommufd pins with GUP, which refuses VM_PFNMAP.
 * The native unmap of the never-mapped range fails (-ENOENT); the compat unmap succeeds with size 0.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  attachDevice,
  bindVfioDevice,
  compatAttachVfioDevice,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  ioasAlloc,
  ioasMap,
  iommufdCtxOf,
  openIommufd,
  unmap,
  vfioMapDma,
  vfioSetIommu,
  vfioUnmapDma,
} from "../../src/iommufd/index.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import {
  openVfioContainer,
  type Type1Container,
  VFIO_TYPE1v2_IOMMU,
  vfioPciMmap,
} from "../../src/vfio/type1.js";
import { vfioF } from "../helpers/vfio-f.js";
import { attempt } from "./setup.js";

type Backend = "vfio_type1" | "vfio_type1v2" | "iommufd_compat_type1v2" | "iommufd";

const IOVA = 0x1_0000_0000n;
const BAR0 = 0x80_0000_0000n;
const MiB = 1n << 20n;
const GiB = 1n << 30n;

interface Shape {
  offset: bigint;
  length: bigint;
  /** Page- but not 1 GiB-aligned VA (map_bar_misaligned). */
  misaligned?: boolean;
}

function run(backend: Backend, shape: Shape) {
  const t = vfioF();
  const m = t.m;
  const addr = shape.misaligned ? 0x7e00_0000_0000n + 0x1000n : undefined;
  const va = vfioPciMmap(m, t.fd, 0, { offset: shape.offset, length: shape.length, addr });
  assert.equal(va % 0x1000n, 0n);
  if (shape.misaligned) assert.notEqual(va % GiB, 0n);
  let mapOutcome: { errno: string | null };
  let unmapOutcome: { errno: string | null; value: bigint | undefined };
  let translate: ((iova: bigint) => bigint | null) | null = null;
  if (backend === "vfio_type1" || backend === "vfio_type1v2") {
    const cfd = openVfioContainer(m, t.fd);
    assert.equal(vfioSetIommu(m, cfd, backend === "vfio_type1" ? 1 : VFIO_TYPE1v2_IOMMU), 0);
    mapOutcome = attempt(() => vfioMapDma(m, cfd, { vaddr: va, iova: IOVA, size: shape.length }));
    const c = m.fds.peek(cfd)!.priv as Type1Container;
    translate = (iova) => {
      const r = c.domain!.translate(iova, "read");
      return r.ok ? r.phys : null;
    };
    const probe = translate(IOVA + shape.length - 1n);
    unmapOutcome = attempt(() => vfioUnmapDma(m, cfd, { iova: IOVA, size: shape.length }));
    return { mapOutcome, unmapOutcome, probe };
  }
  const ifd = openIommufd(m);
  if (backend === "iommufd") {
    const ioasId = ioasAlloc(m, ifd);
    attachDevice(m, ifd, bindVfioDevice(m, ifd, t.fd), ioasId);
    const flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA;
    mapOutcome = attempt(() =>
      ioasMap(m, ifd, { ioasId, userVa: va, length: shape.length, iova: IOVA, flags }),
    );
    unmapOutcome = attempt(() => unmap(m, ifd, { ioasId, iova: IOVA, length: shape.length }));
    assert.equal(iommufdCtxOf(m, ifd).getIoas(ioasId).iopt.areas.length, 0);
  } else {
    compatAttachVfioDevice(m, ifd, t.fd);
    assert.equal(vfioSetIommu(m, ifd, VFIO_TYPE1v2_IOMMU), 0);
    mapOutcome = attempt(() => vfioMapDma(m, ifd, { vaddr: va, iova: IOVA, size: shape.length }));
    unmapOutcome = attempt(() => vfioUnmapDma(m, ifd, { iova: IOVA, size: shape.length }));
  }
  return { mapOutcome, unmapOutcome, probe: null };
}

function expectSplit(shape: Shape) {
  for (const b of ["vfio_type1", "vfio_type1v2"] as const) {
    const r = run(b, shape);
    assert.equal(r.mapOutcome.errno, null, b);
    assert.equal(r.probe, BAR0 + shape.offset + shape.length - 1n, b); // the IOVA reaches the BAR
    assert.deepEqual(r.unmapOutcome, { errno: null, value: shape.length }, b);
  }
  const n = run("iommufd", shape);
  assert.equal(n.mapOutcome.errno, "EFAULT");
  assert.equal(n.unmapOutcome.errno, "ENOENT");
  const c = run("iommufd_compat_type1v2", shape);
  assert.equal(c.mapOutcome.errno, "EFAULT");
  assert.deepEqual(c.unmapOutcome, { errno: null, value: 0n });
}

test("K-174 map_full_bar: type1/type1v2 map 0 and unmap 0; native iommufd map -EFAULT, unmap -ENOENT; compat map -EFAULT, unmap 0 with size 0", () => {
  expectSplit({ offset: 0n, length: 16n * MiB });
});

test("K-175 map_partial_bar (one page): same outcome split by backend", () => {
  expectSplit({ offset: 0n, length: 0x1000n });
});

test("K-176 map_bar_misaligned (VA page- but not 1 GiB-aligned, size min(BAR, 1 GiB)): same outcome split by backend", () => {
  expectSplit({ offset: 0n, length: 16n * MiB, misaligned: true });
});

test("K-174 (type1 PFN walk) a BAR whose memory decode is off cannot be faulted in: type1 map -EFAULT", () => {
  const t = vfioF();
  const va = vfioPciMmap(t.m, t.fd, 0, { length: 0x1000n });
  const cfd = openVfioContainer(t.m, t.fd);
  vfioSetIommu(t.m, cfd, VFIO_TYPE1v2_IOMMU);
  t.configWrite(PCI_COMMAND, 2, 0x4);
  assert.equal(attempt(() => vfioMapDma(t.m, cfd, { vaddr: va, iova: IOVA, size: 0x1000n })).errno, "EFAULT");
});
