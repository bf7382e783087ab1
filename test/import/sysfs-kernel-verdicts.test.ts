/**
 * The real kernel's verdicts, recomputed from the sysfs archives it left: the archive is imported
 * with every `iommu_group` link and `kernel/iommu_groups` entry removed, then our IOMMU groups and
 * P2PDMA verdicts are compared with what that kernel reported (iommu_groups.txt, p2p-matrix.tsv).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { importSysfs } from "../../src/import/sysfs.js";
import { MemFs } from "../../src/import/sysfs-vfs.js";
import { readArchive } from "../../src/import/tar.js";
import { groupsAsBdfs } from "../../src/iommu/groups.js";
import { Machine } from "../../src/machine/machine.js";
import { parseIommuGroups, parseP2pMatrix } from "../helpers/qemu-fixture.js";

const QEMU = new URL("../../../shared/fixtures/qemu/", import.meta.url).pathname;

for (const topo of readdirSync(QEMU).filter((d) => !d.includes("."))) {
  test(`${topo}: groups and P2P verdicts computed from the sysfs archive without its iommu_group links equal the kernel's`, () => {
    const file = `${QEMU}${topo}/sysfs.tar.gz`;
    const entries = readArchive(new Uint8Array(readFileSync(file)), file).filter(
      (e) => !/(^|\/)iommu_group$/.test(e.path) && !/(^|\/)kernel\/iommu_groups(\/|$)/.test(e.path),
    );
    const imp = importSysfs(MemFs.fromTar(entries, file));
    assert.equal(imp.reportedGroups, null, "the links are really gone");
    const m = new Machine(imp.fabric);
    const want = parseIommuGroups(readFileSync(`${QEMU}${topo}/iommu_groups.txt`, "utf8"));
    assert.deepEqual(groupsAsBdfs(m.iommuGroups.groups), want);
    let matrix: string;
    try {
      matrix = readFileSync(`${QEMU}${topo}/p2p-matrix.tsv`, "utf8");
    } catch {
      return; // Debian kernel captures have no P2PDMA verdicts
    }
    for (const row of parseP2pMatrix(matrix)) {
      const p = m.device(row.provider);
      const c = m.device(row.client);
      assert.equal(m.p2pdma.distance(p, c, false), row.distance, `${row.provider} → ${row.client}`);
      if (row.map === "-") continue;
      const want = {
        "bus-address": "BUS_ADDR",
        "host-bridge": "THRU_HOST_BRIDGE",
        "not-supported": "NOT_SUPPORTED",
      }[row.map];
      assert.equal(m.p2pdma.calc(p, c, false).type, want, `${row.provider} → ${row.client}`);
    }
  });
}
