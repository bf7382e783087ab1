/**
 * The PCI ID database (src/import/pciids.ts and data/pci.ids): the shipped copy is the fixture's
 * file byte for byte, with its licence header; names both ways (ids → names for display, names →
 * ids for lspci output printed without -nn), and the class names.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { defaultPciIds, PCI_IDS_FILE, PciIds } from "../../src/import/pciids.js";
import { REAL } from "./import-fixtures.js";

test("data/pci.ids is the fixture's pci.ids (2026.08.22, 1,659,114 bytes), licence header included", () => {
  const shipped = readFileSync(PCI_IDS_FILE);
  const fixture = readFileSync(`${REAL}pciids/pci.ids`);
  assert.equal(shipped.length, 1659114);
  assert.equal(
    createHash("sha256").update(shipped).digest("hex"),
    createHash("sha256").update(fixture).digest("hex"),
  );
  const head = shipped.subarray(0, 2000).toString("utf8");
  assert.match(head, /Version: 2026\.08\.22/);
  assert.match(head, /GNU General Public License\n#\t\(version 2 or higher\) or the 3-clause BSD License/);
  assert.equal(defaultPciIds().version, "2026.08.22");
});

test("pci.ids: vendors, devices and classes by id; lspci's fallbacks for unknown ids", () => {
  const db = defaultPciIds();
  assert.ok(db.vendors.size > 2000);
  assert.equal(db.vendorName(0x10b5), "PLX Technology, Inc.");
  assert.equal(db.deviceName(0x1000, 0xc010), "PEX880xx PCIe Gen 4 Switch");
  assert.equal(db.vendorName(0x11f8), "Microchip Technology");
  assert.equal(db.className(0x0604), "PCI bridge");
  assert.equal(db.className(0x0108), "Non-Volatile memory controller");
  // the H200 lspci called "Device 2335" in 2024 (github issue) is named in this database
  assert.equal(db.describe(0x10de, 0x2335), "NVIDIA Corporation GH100 [H200 SXM 141GB]");
  assert.equal(db.describe(0x10de, 0xfffe), "NVIDIA Corporation Device fffe");
  assert.equal(db.describe(0xfffc, 0x0001), "Vendor fffc Device 0001");
});

test("pci.ids: ids from what lspci printed without -nn", () => {
  const db = defaultPciIds();
  assert.deepEqual(db.idsFromNames("Red Hat, Inc. QEMU NVM Express Controller"), {
    vendor: 0x1b36,
    device: 0x0010,
    ambiguous: [],
  });
  assert.deepEqual(db.idsFromNames("NVIDIA Corporation Device 2335"), {
    vendor: 0x10de,
    device: 0x2335,
    ambiguous: [],
  });
  assert.deepEqual(db.idsFromNames("Vendor 1d0f Device efa0"), {
    vendor: 0x1d0f,
    device: 0xefa0,
    ambiguous: [],
  });
  // the longest vendor name wins ("Advanced Micro Devices, Inc. [AMD]" is not "[AMD/ATI]")
  assert.equal(db.idsFromNames("Advanced Micro Devices, Inc. [AMD] Device 14a4").vendor, 0x1022);
  // a name two ids share is reported
  assert.ok(db.idsFromNames("Intel Corporation 82574L Gigabit Network Connection").ambiguous.length > 0);
  assert.deepEqual(db.idsFromNames("Nobody Knows This Device"), { ambiguous: [] });
  assert.equal(db.classFromName("Ethernet controller"), 0x0200);
  assert.equal(db.classFromName("Class 0b40"), 0x0b40);
  assert.equal(db.classFromName("no such class"), undefined);
});

test("pci.ids parser: tolerant of CRLF, comments and other top-level lists", () => {
  const db = PciIds.parse(
    "# Version: 1\r\n1234  Acme\r\n\t5678  Widget\r\n\t\t1234 0001  Sub\r\nC 02  Network controller\r\n\t00  Ethernet controller\r\nL 00  Language\r\n\t00  x\r\n",
  );
  assert.equal(db.version, "1");
  assert.equal(db.deviceName(0x1234, 0x5678), "Widget");
  assert.equal(db.className(0x0200), "Ethernet controller");
});

test("pci.ids parser: lines that are not entries are skipped, and what follows a foreign list is not taken as its devices", () => {
  const db = PciIds.parse(
    [
      "abcd\tTabbed  Vendor  ", // a tab after the id; the name keeps its inner and trailing blanks
      "\t12  too short for a device id",
      "\t12345  too long",
      "\tbeef",
      "\tcafe  Real Device",
      "C zz  not a class", // 'C' then a space but no class id: another top-level list
      "\tfeed  not Acme's",
      "C 03  Display controller",
      "\t0302  a 4-digit subclass id is read too",
      "\t\t01  VGA",
      "\t\t0x  not a prog-if",
      "ffff  Illegal Vendor ID",
    ].join("\n"),
  );
  assert.equal(db.vendorName(0xabcd), "Tabbed  Vendor  ");
  assert.deepEqual([...(db.vendors.get(0xabcd)?.devices ?? [])], [[0xcafe, "Real Device"]]);
  assert.deepEqual([...db.classes.keys()], [0x03]);
  assert.deepEqual(
    [...(db.classes.get(0x03)?.subclasses ?? [])].map(([id, s]) => [id, s.name, [...s.progIfs]]),
    [[0x0302, "a 4-digit subclass id is read too", [[0x01, "VGA"]]]],
  );
  assert.equal(db.vendorName(0xffff), "Illegal Vendor ID");
});
