import assert from "node:assert/strict";
import { test } from "node:test";
import { GenericDevice } from "../../src/core/device.js";
import { calcMapTypeAndDist, P2pdma, PCI_P2PDMA_MAP } from "../../src/p2pdma/index.js";
import { mapTypeCacheKey, parseBdf } from "../../src/pci/bdf.js";
import { compose, cpuIntel, cpuZen, fn, identity, specF } from "../helpers/spec-f.js";

const ALLOWED = identity("8086:2020");

test("K-6 pci_p2pdma_map_type enum values", () => {
  assert.deepEqual(PCI_P2PDMA_MAP, {
    UNKNOWN: 0,
    NONE: 1,
    NOT_SUPPORTED: 2,
    BUS_ADDR: 3,
    THRU_HOST_BRIDGE: 4,
  });
});

test("K-8 map-type cache key of client 0001:02:03.4 is 0x1021C", () => {
  assert.equal(mapTypeCacheKey(parseBdf("0001:02:03.4")), 0x1021c);
});

test("K-90 distance(EPa, EPb) = 4 BUS_ADDR; distance(EPa, EPa) = 0 BUS_ADDR", () => {
  const { dev } = specF();
  const v = calcMapTypeAndDist(dev.EPa, dev.EPb, cpuIntel);
  assert.equal(v.type, "BUS_ADDR");
  assert.equal(v.dist, 4);
  assert.equal(v.commonAncestor, dev.USP);
  const self = calcMapTypeAndDist(dev.EPa, dev.EPa, cpuIntel);
  assert.deepEqual([self.type, self.dist], ["BUS_ADDR", 0]);
});

test("K-91 MF0→MF1 dist 2 BUS_ADDR; RC1→RC2 dist 2, THRU_HOST_BRIDGE gated by the allow-list", () => {
  const { dev } = specF();
  const mf = calcMapTypeAndDist(dev.MF0, dev.MF1, cpuIntel);
  assert.deepEqual([mf.type, mf.dist], ["BUS_ADDR", 2]);
  const rc = calcMapTypeAndDist(dev.RC1, dev.RC2, cpuIntel);
  assert.deepEqual([rc.type, rc.dist], ["NOT_SUPPORTED", 2]);
  const allowed = specF(ALLOWED).dev;
  const rc2 = calcMapTypeAndDist(allowed.RC1, allowed.RC2, cpuIntel);
  assert.deepEqual([rc2.type, rc2.dist], ["THRU_HOST_BRIDGE", 2]);
});

test("K-92 distance(EPa, EPc) with identity 8086:2020 = 6, THRU_HOST_BRIDGE", () => {
  const { dev } = specF(ALLOWED);
  const v = calcMapTypeAndDist(dev.EPa, dev.EPc, cpuIntel);
  assert.deepEqual([v.type, v.dist, v.commonAncestor], ["THRU_HOST_BRIDGE", 6, null]);
  // without the allow-listed identity: not supported, same distance
  const d = specF().dev;
  assert.equal(calcMapTypeAndDist(d.EPa, d.EPc, cpuIntel).type, "NOT_SUPPORTED");
});

const dspaRR = (m: Parameters<typeof fn>[0]) => {
  fn(m, "DSPa").acs = { cap: ["SV", "RR", "CR", "UF", "EC"], ctrl: ["RR"] };
};

test("K-93 DSPa ACS RR: THRU_HOST_BRIDGE with 8086:2020; NOT_SUPPORTED + whitelist warning with 8086:1234; distance 4", () => {
  const a = specF(compose(dspaRR, ALLOWED)).dev;
  const v = calcMapTypeAndDist(a.EPa, a.EPb, cpuIntel, { verbose: true });
  assert.deepEqual([v.type, v.dist, v.acsRedirects], ["THRU_HOST_BRIDGE", 4, true]);
  const b = specF(dspaRR).dev;
  const w = calcMapTypeAndDist(b.EPa, b.EPb, cpuIntel, { verbose: true });
  assert.deepEqual([w.type, w.dist], ["NOT_SUPPORTED", 4]);
  assert.ok(w.log.includes("0000:00:00.0: Host bridge not in P2PDMA whitelist: 8086:1234"), w.log.join("\n"));
  assert.ok(w.log.some((l) => l.endsWith("pci=disable_acs_redir=0000:02:00.0")));
});

test("K-94 DSPb ACS control EC only counts as redirect", () => {
  const ec = (m: Parameters<typeof fn>[0]) => {
    fn(m, "DSPb").acs = { cap: ["SV", "RR", "CR", "UF", "EC"], ctrl: ["EC"] };
  };
  assert.equal(
    calcMapTypeAndDist(specF(compose(ec, ALLOWED)).dev.EPa, specF(compose(ec, ALLOWED)).dev.EPb, cpuIntel)
      .type,
    "THRU_HOST_BRIDGE",
  );
  const d = specF(ec).dev;
  assert.equal(calcMapTypeAndDist(d.EPa, d.EPb, cpuIntel).type, "NOT_SUPPORTED");
});

test("K-95 DSPa/DSPb control SV|UF only → BUS_ADDR", () => {
  const { dev } = specF((m) => {
    fn(m, "DSPa").acs = { cap: ["SV", "RR", "CR", "UF", "EC"], ctrl: ["SV", "UF"] };
    fn(m, "DSPb").acs = { cap: ["SV", "RR", "CR", "UF", "EC"], ctrl: ["SV", "UF"] };
  });
  assert.equal(calcMapTypeAndDist(dev.EPa, dev.EPb, cpuIntel).type, "BUS_ADDR");
});

test("K-96 RP0 control RR|CR above the common ancestor → still BUS_ADDR", () => {
  const { dev } = specF((m) => {
    fn(m, "RP0").acs = { cap: ["SV", "TB", "RR", "CR", "UF", "EC"], ctrl: ["RR", "CR"] };
  });
  assert.equal(calcMapTypeAndDist(dev.EPa, dev.EPb, cpuIntel).type, "BUS_ADDR");
});

test("K-97 USP (the common ancestor) with ACS RR → THRU_HOST_BRIDGE (allow-listed) / NOT_SUPPORTED", () => {
  const usp = (m: Parameters<typeof fn>[0]) => {
    fn(m, "USP").acs = { cap: ["SV", "RR", "CR", "UF"], ctrl: ["RR"] };
  };
  const a = specF(compose(usp, ALLOWED)).dev;
  const v = calcMapTypeAndDist(a.EPa, a.EPb, cpuIntel);
  assert.equal(v.type, "THRU_HOST_BRIDGE");
  assert.deepEqual(
    v.acsPath.map((d) => d.bdf),
    ["0000:01:00.0"],
  );
  const b = specF(usp).dev;
  assert.equal(calcMapTypeAndDist(b.EPa, b.EPb, cpuIntel).type, "NOT_SUPPORTED");
});

test("K-98 EPa with its own ACS RR → EPa→EPa THRU_HOST_BRIDGE (allow-listed) / NOT_SUPPORTED", () => {
  const epa = (m: Parameters<typeof fn>[0]) => {
    fn(m, "EPa").acs = { cap: ["SV", "RR", "CR", "UF"], ctrl: ["RR"] };
  };
  const a = specF(compose(epa, ALLOWED)).dev;
  assert.deepEqual(
    [calcMapTypeAndDist(a.EPa, a.EPa, cpuIntel).type, calcMapTypeAndDist(a.EPa, a.EPa, cpuIntel).dist],
    ["THRU_HOST_BRIDGE", 0],
  );
  const b = specF(epa).dev;
  assert.equal(calcMapTypeAndDist(b.EPa, b.EPa, cpuIntel).type, "NOT_SUPPORTED");
});

test("K-99 RP2 with ACS RR → MF0→MF1 THRU_HOST_BRIDGE (the common ancestor RP2 counts)", () => {
  const rp2 = (m: Parameters<typeof fn>[0]) => {
    fn(m, "RP2").acs = { cap: ["SV", "RR", "CR", "UF"], ctrl: ["RR"] };
  };
  const a = specF(compose(rp2, ALLOWED)).dev;
  const v = calcMapTypeAndDist(a.MF0, a.MF1, cpuIntel, { verbose: true });
  assert.deepEqual([v.type, v.dist], ["THRU_HOST_BRIDGE", 2]);
  assert.deepEqual(
    v.acsPath.map((d) => d.bdf),
    ["0000:00:03.0"],
  );
  const b = specF(rp2).dev;
  assert.equal(calcMapTypeAndDist(b.MF0, b.MF1, cpuIntel).type, "NOT_SUPPORTED");
});

test("K-100 the map-type cache survives an ACS change and dies with the provider's p2pdma state", () => {
  const { dev } = specF(ALLOWED);
  const p2p = new P2pdma({ cpu: cpuIntel });
  p2p.init(dev.EPa);
  const prov = p2p.provider(dev.EPa, 0)!;
  assert.equal(p2p.mapType(prov, dev.EPb), "BUS_ADDR");
  dev.DSPa.setAcsCtrl(0x04); // RR
  assert.equal(p2p.mapType(prov, dev.EPb), "BUS_ADDR", "cached verdict");
  p2p.release(dev.EPa); // vfio-pci unbound
  p2p.init(dev.EPa); // bound again: new state
  assert.equal(p2p.mapType(p2p.provider(dev.EPa, 0)!, dev.EPb), "THRU_HOST_BRIDGE");
  // and with the default identity the fresh calculation refuses
  const d = specF().dev;
  const q = new P2pdma({ cpu: cpuIntel });
  q.init(d.EPa);
  d.DSPa.setAcsCtrl(0x04);
  assert.equal(q.mapType(q.provider(d.EPa, 0)!, d.EPb), "NOT_SUPPORTED");
});

test("K-101 clients 0000:04:00.0 and 0001:04:00.0 use different cache keys", () => {
  assert.equal(mapTypeCacheKey(parseBdf("0000:04:00.0")), 0x400);
  assert.equal(mapTypeCacheKey(parseBdf("0001:04:00.0")), 0x10400);
});

test("K-102 distance_many with no clients → -1; a client without a PCI ancestor → -1", () => {
  const { dev } = specF();
  const p2p = new P2pdma({ cpu: cpuIntel });
  assert.equal(p2p.distanceMany(dev.EPa, [], false), -1);
  assert.equal(p2p.distanceMany(dev.EPa, [new GenericDevice("plat0")], false), -1);
  // a virtual device whose parent is a PCI function resolves to it
  assert.equal(p2p.distanceMany(dev.EPa, [new GenericDevice("ib0", dev.EPb)], false), 4);
});

test("K-103 distance_many(EPa, [EPb, EPc]) → -1; EPc stops the loop when not verbose; verbose warns for EPc", () => {
  const { dev } = specF();
  const lines: string[] = [];
  const p2p = new P2pdma({ cpu: cpuIntel, log: (l) => lines.push(l) });
  assert.equal(p2p.distanceMany(dev.EPa, [dev.EPb, dev.EPc], false), -1);
  assert.equal(lines.length, 0);
  // the loop stops at EPc: with EPa's p2pdma state present, only EPc's verdict gets cached
  p2p.init(dev.EPa);
  assert.equal(p2p.distanceMany(dev.EPa, [dev.EPc, dev.EPb], false), -1);
  assert.deepEqual([...p2p.state(dev.EPa)!.mapTypes.keys()], [mapTypeCacheKey(dev.EPc.address)]);
  const v = new P2pdma({ cpu: cpuIntel, log: (l) => lines.push(l) });
  assert.equal(v.distanceMany(dev.EPa, [dev.EPb, dev.EPc], true), -1);
  assert.deepEqual(lines, [
    "0000:05:00.0: cannot be used for peer-to-peer DMA as the client and provider (0000:03:00.0) do not share an upstream bridge or whitelisted host bridge",
  ]);
});

test("K-104 distance_many(EPa, [EPb, EPbVF]) = 8 (a VF's path is its PF's)", () => {
  const { dev } = specF();
  assert.equal(new P2pdma({ cpu: cpuIntel }).distanceMany(dev.EPa, [dev.EPb, dev.EPbVF], false), 8);
});

test("AMD Zen CPU allows every cross-root-port pair through the host bridge", () => {
  const { dev } = specF();
  const v = calcMapTypeAndDist(dev.EPa, dev.EPd, cpuZen);
  assert.deepEqual([v.type, v.dist], ["THRU_HOST_BRIDGE", 6]);
  assert.equal(
    calcMapTypeAndDist(dev.EPa, dev.EPd, { vendor: "AuthenticAMD", family: 0x16, source: "t" }).type,
    "NOT_SUPPORTED",
  );
});

test("REQ_SAME_HOST_BRIDGE entries allow peers under one host bridge only", () => {
  const { dev } = specF((m) => {
    m.hostBridges[0].functions[0].id = "8086:2f00";
    m.hostBridges[1].functions[0].id = "8086:2f00";
  });
  assert.equal(calcMapTypeAndDist(dev.EPa, dev.EPc, cpuIntel).type, "THRU_HOST_BRIDGE");
  const cross = calcMapTypeAndDist(dev.EPa, dev.EPd, cpuIntel);
  assert.equal(cross.type, "NOT_SUPPORTED");
  assert.ok(
    cross.reasons.some(
      (r) => r.kind === "host-bridge" && !r.check.ok && r.check.why === "requires-same-host-bridge",
    ),
  );
});
